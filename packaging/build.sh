#!/usr/bin/env bash
# Build the double-clickable app: dist/GemmaDesktop/ (one folder, runs without Python).
#
#   bash packaging/build.sh            # uses .venv (run packaging/setup.sh first)
#   bash packaging/install.sh          # then: copy it under ~/.local/share and add the menu entry
#
# The llama.cpp inside the bundle is whatever .venv has: setup.sh's portable CPU build by default,
# or the GPU build it was asked for (CMAKE_ARGS). Steps: icons (SVG -> PNG/ICO/ICNS), a tiny
# synthetic Gemma 4 for `--self-test`, PyInstaller, then a smoke check and the bundle size.
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=.venv/bin/python
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
start=$(date +%s)

[ -x "$VPY" ] || { echo "no .venv: run 'bash packaging/setup.sh' first" >&2; exit 1; }
$VPY -c "import llama_cpp" 2>/dev/null || { echo "llama-cpp-python is not installed in .venv: run packaging/setup.sh" >&2; exit 1; }
if ! $VPY -c "import PyInstaller" 2>/dev/null; then
  log "Installing PyInstaller into .venv"
  $VPY -m pip install -q --disable-pip-version-check "pyinstaller>=6.10" 2>&1 | grep -v "^WARNING: Location" || true
fi

log "Rendering icons"
QT_QPA_PLATFORM=offscreen $VPY packaging/make_icons.py build/icons

log "Writing the self-test model"
$VPY packaging/selftest_model.py build/selftest >/dev/null

log "Running PyInstaller (a few minutes on 2 cores)"
GEMMA_SELFTEST_MODEL_DIR="$PWD/build/selftest" $VPY -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/gemma-desktop.spec

# Smoke check: the frozen app runs its own self-test (engine host, tiny model, thinking).
if [ -z "${GEMMA_BUILD_NO_SMOKE:-}" ]; then
  log "Self-test of the bundle"
  GEMMA_DESKTOP_HOME="$(mktemp -d)" dist/GemmaDesktop/GemmaDesktop --self-test --no-audio
fi

size=$(du -sh dist/GemmaDesktop | cut -f1)
log "Built dist/GemmaDesktop in $(( $(date +%s) - start )) s; bundle size $size"
echo "bundle: $PWD/dist/GemmaDesktop ($size)"
