#!/usr/bin/env bash
# Set up Gemma Desktop from a source checkout on Debian/Ubuntu: system packages, a venv in .venv,
# llama-cpp-python built from source with its backends as runtime modules.
#
#   bash packaging/setup.sh                                  # Linux default: CPU variants + Vulkan
#   CMAKE_ARGS="-DGGML_CUDA=on" bash packaging/setup.sh      # NVIDIA CUDA (toolkit needed)
#   CMAKE_ARGS="-DGGML_HIP=on" bash packaging/setup.sh       # AMD ROCm
#   bash packaging/setup.sh --llama-only                     # only (re)build/install llama-cpp-python
#
# The built wheel is cached per CMAKE_ARGS in ~/.cache/gemma-desktop/wheels, so running this again
# (or in CI) takes seconds. A build that fails, or a wheel that lacks the asked-for backend, stops
# the script with a non-zero exit; .venv/llama-build-args is written only after a good install.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_VERSION=0.3.36
CACHE="${GEMMA_CACHE:-$HOME/.cache/gemma-desktop}"
VENV="${GEMMA_VENV:-.venv}"
PY="${PYTHON:-python3}"
LLAMA_ONLY=0; [ "${1:-}" = "--llama-only" ] && LLAMA_ONLY=1

# Backends are runtime modules (GGML_BACKEND_DL): one CPU library per instruction-set level, picked
# at run time, so a build runs on other CPUs (a native build's AMX kernels crashed on some Xeons),
# plus Vulkan, which drives NVIDIA, AMD and Intel GPUs with nothing but the driver installed.
if [ "$(uname -s)" = Darwin ]; then
  DEFAULT_ARGS="-DGGML_NATIVE=OFF"   # llama.cpp's default on macOS is Metal
else
  DEFAULT_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_VULKAN=ON"
fi
CMAKE_ARGS="${CMAKE_ARGS:-$DEFAULT_ARGS}"
case "$CMAKE_ARGS" in *GGML_NATIVE*) ;; *) CMAKE_ARGS="$CMAKE_ARGS -DGGML_NATIVE=OFF" ;; esac
wants() { printf '%s' "$CMAKE_ARGS" | grep -Eqi -- "-D$1=(on|1|true|yes)"; }

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
quiet_pip() { sed -u '/^WARNING: Location/d'; }   # never fails, so pipefail reports pip's status
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

# --- system packages (Qt runtime libs, PulseAudio for the microphone, test tools) -------------
APT_PACKAGES=(
  libgl1 libegl1 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
  libxcb-xinerama0 libxcb-xkb1 libpulse0 libsndfile1 fonts-dejavu-core
  pulseaudio pulseaudio-utils xvfb xauth espeak-ng sox cmake build-essential
  desktop-file-utils
)
# Vulkan: the shader compiler for the build; the loader, Mesa's lavapipe (a conformant CPU Vulkan
# device the tests run on; Debian 12's Mesa 22.3, backports' 25.x ran 7x slower) and vulkaninfo.
wants GGML_VULKAN && APT_PACKAGES+=(glslc libvulkan1 mesa-vulkan-drivers vulkan-tools)
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "Installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}
if [ "$LLAMA_ONLY" = 0 ]; then
  if command -v dpkg-query >/dev/null 2>&1; then
    apt_install "${APT_PACKAGES[@]}"
  else
    log "Not a Debian-based system: install Qt's runtime libraries, PulseAudio and libsndfile yourself."
  fi
fi

# --- Vulkan headers ---------------------------------------------------------------------------------
# Debian 12's libvulkan-dev (1.3.239) lacks vk::LayerSettingEXT, which ggml-vulkan uses. Debian 13's
# headers work against Debian 12's loader; they are unpacked privately (never installed: trixie's
# libvulkan1 needs a newer libc). Only the headers and CMake files are used.
vulkan_headers() {
  local root="$CACHE/vulkan-headers" lists="$CACHE/vulkan-headers.apt"
  if [ ! -f "$root/usr/include/vulkan/vulkan.hpp" ] || ! grep -q LayerSettingEXT \
       "$root/usr/include/vulkan/vulkan_structs.hpp" 2>/dev/null; then
    log "Fetching Debian 13 Vulkan headers into $root"
    rm -rf "$root" "$lists"; mkdir -p "$root" "$lists/lists/partial" "$lists/debs"
    echo "deb http://deb.debian.org/debian trixie main" > "$lists/sources.list"
    local opts=(-o Dir::Etc::sourcelist="$lists/sources.list" -o Dir::Etc::sourceparts=-
                -o Dir::State::Lists="$lists/lists" -o APT::Get::List-Cleanup=0)
    # apt's progress goes to stderr: this function's stdout is the CMake arguments.
    apt-get "${opts[@]}" update -qq >&2
    (cd "$lists/debs" && apt-get "${opts[@]}" download libvulkan-dev spirv-headers) >&2
    local deb; for deb in "$lists"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
  fi
  # The loader is Debian 12's libvulkan1, which ships no unversioned libvulkan.so to link against.
  local lib; lib=$(ldconfig -p | awk '/libvulkan\.so\.1 .*x86-64|libvulkan\.so\.1 .*AArch64/ {print $NF; exit}')
  [ -n "$lib" ] || { echo "error: libvulkan.so.1 not found (apt-get install libvulkan1)" >&2; return 1; }
  printf '%s' "-DVulkan_INCLUDE_DIR=$root/usr/include -DCMAKE_PREFIX_PATH=$root/usr -DVulkan_LIBRARY=$lib"
}

# --- virtual environment ---------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "Creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
$VPY -m pip install -q --disable-pip-version-check --upgrade pip wheel setuptools 2>&1 | quiet_pip

# --- llama-cpp-python, built once per CMAKE_ARGS ----------------------------------------------------
# The wheel must contain each backend module asked for; pip would happily hand back another build.
check_wheel() {
  local whl="$1" listing; listing=$($VPY -m zipfile -l "$whl")
  local mod
  for mod in VULKAN:vulkan CUDA:cuda HIP:hip METAL:metal; do
    if wants "GGML_${mod%%:*}" && ! grep -q "libggml-${mod#*:}" <<<"$listing"; then
      echo "error: $whl has no ${mod#*:} backend although CMAKE_ARGS asks for it" >&2; return 1
    fi
  done
  if wants GGML_CPU_ALL_VARIANTS && ! grep -q "libggml-cpu-" <<<"$listing"; then
    echo "error: $whl has no CPU variant libraries although CMAKE_ARGS asks for them" >&2; return 1
  fi
}
build_llama() {
  local key wheels build_args="$CMAKE_ARGS"
  key=$(printf '%s' "$LLAMA_VERSION $CMAKE_ARGS $($VPY -c 'import sys;print(sys.version_info[:2])')" \
        | sha256sum | cut -c1-16)
  wheels="${GEMMA_WHEEL_CACHE:-$CACHE/wheels}/$key"
  if ! ls "$wheels"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    if wants GGML_VULKAN && [ "$(uname -s)" = Linux ]; then
      local vk; vk=$(vulkan_headers); build_args="$build_args $vk"
    fi
    local sdist="$CACHE/sdist" tmp
    mkdir -p "$sdist"
    ls "$sdist"/llama_cpp_python-"$LLAMA_VERSION".tar.gz >/dev/null 2>&1 || \
      $VPY -m pip download -q --no-cache-dir --no-deps --no-binary :all: -d "$sdist" \
        "llama-cpp-python==$LLAMA_VERSION" 2>&1 | quiet_pip
    log "Building llama-cpp-python $LLAMA_VERSION ($CMAKE_ARGS); this takes several minutes once"
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
    # --no-cache-dir: pip keys its own wheel cache by the sdist, not by CMAKE_ARGS.
    CMAKE_ARGS="$build_args" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      $VPY -m pip wheel -q --no-cache-dir --no-deps -w "$tmp" \
        "$sdist"/llama_cpp_python-"$LLAMA_VERSION".tar.gz 2>&1 | quiet_pip
    check_wheel "$tmp"/llama_cpp_python-*.whl
    mkdir -p "$wheels" && mv "$tmp"/llama_cpp_python-*.whl "$wheels"/
  fi
  check_wheel "$wheels"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
  $VPY -m pip install -q --no-deps --force-reinstall \
    "$wheels"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>&1 | quiet_pip
  # Recorded only now, so the app never names a backend it does not have.
  printf '%s\n' "$CMAKE_ARGS" > "$VENV/llama-build-args"
}
build_llama
[ "$LLAMA_ONLY" = 1 ] && exit 0

# --- the app and its test tools --------------------------------------------------------------------
log "Installing Gemma Desktop and its dependencies"
$VPY -m pip install -q -e ".[dev,package]" 2>&1 | quiet_pip
$VPY -c "import llama_cpp, PySide6.QtMultimedia, huggingface_hub, soundfile, pytest_timeout
print('ready: llama-cpp-python', llama_cpp.__version__)"
