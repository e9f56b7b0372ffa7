#!/usr/bin/env bash
# Set up Gemma Desktop from a source checkout on Debian/Ubuntu: system packages, a venv in .venv,
# llama-cpp-python built from source (portable CPU build unless CMAKE_ARGS asks for a GPU backend).
#
#   bash packaging/setup.sh                                  # CPU build
#   CMAKE_ARGS="-DGGML_CUDA=on" bash packaging/setup.sh      # NVIDIA (CUDA toolkit needed)
#   CMAKE_ARGS="-DGGML_VULKAN=on" bash packaging/setup.sh    # Vulkan (libvulkan-dev, glslc)
#   CMAKE_ARGS="-DGGML_HIP=on" bash packaging/setup.sh       # AMD ROCm
#
# The built llama-cpp-python wheel is cached per CMAKE_ARGS in ~/.cache/gemma-desktop/wheels,
# so running this again (or in CI) takes seconds, not minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_VERSION=0.3.36
# A native build compiles AMX/AVX-512 kernels for the build machine's CPU; on some CPUs they crash
# (SIGSEGV in ggml_backend_amx_mul_mat), and a packaged app must run on other CPUs anyway.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
case "$CMAKE_ARGS" in *GGML_NATIVE*) ;; *) CMAKE_ARGS="$CMAKE_ARGS -DGGML_NATIVE=OFF" ;; esac
PY="${PYTHON:-python3}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# --- system packages (Qt runtime libs, PulseAudio for the microphone, test tools) -------------
APT_PACKAGES=(
  libgl1 libegl1 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
  libxcb-xinerama0 libxcb-xkb1 libpulse0 libsndfile1 fonts-dejavu-core
  pulseaudio pulseaudio-utils xvfb xauth espeak-ng sox cmake build-essential
  desktop-file-utils
)
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "Installing system packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
else
  log "Not a Debian-based system: install Qt's runtime libraries, PulseAudio and libsndfile yourself."
fi

# --- virtual environment ---------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  log "Creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
$VPY -m pip install -q --disable-pip-version-check --upgrade pip wheel setuptools 2>&1 | grep -v "^WARNING: Location" || true

# --- llama-cpp-python, built once per CMAKE_ARGS ----------------------------------------------------
key=$(printf '%s' "$LLAMA_VERSION $CMAKE_ARGS $($VPY -c 'import sys;print(sys.version_info[:2])')" | sha256sum | cut -c1-16)
WHEELS="${GEMMA_WHEEL_CACHE:-$HOME/.cache/gemma-desktop/wheels}/$key"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  log "Building llama-cpp-python $LLAMA_VERSION ($CMAKE_ARGS); this takes a few minutes once"
  CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    $VPY -m pip wheel -q --no-deps --no-binary llama-cpp-python -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION" \
    2>&1 | grep -v "^WARNING: Location" || true
fi
$VPY -m pip install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>&1 \
  | grep -v "^WARNING: Location" || true
# Record what was built, so the app can tell users which backend they have.
printf '%s\n' "$CMAKE_ARGS" > .venv/llama-build-args

# --- the app and its test tools --------------------------------------------------------------------
log "Installing Gemma Desktop and its dependencies"
$VPY -m pip install -q -e ".[dev,package]" 2>&1 | grep -v "^WARNING: Location" || true
$VPY -c "import llama_cpp, PySide6.QtMultimedia, huggingface_hub, soundfile; print('ready: llama-cpp-python', llama_cpp.__version__)"
