#!/usr/bin/env bash
# CUDA figures on a lent GPU machine (NVIDIA H200: nvcc 13, CMake, ninja, Python 3.12; no network,
# no PySide6, at most 64 MiB carried). Two halves:
#
#   bash benchmarks/gpu.sh prepare      # here: trimmed llama.cpp source + a small model in .gpu/
#   bash benchmarks/gpu.sh run          # there (carry .gpu): build with CUDA 9.0, then measure
#
# `run` builds llama-cpp-python's libraries with CMake directly (pip would need the network for
# its build backend), puts them under .gpu/py/llama_cpp/lib, and measures with full offload:
# raw llama.cpp decode and TTFT (benchmarks/engine.py's RawLlama) against the app's Qt-free path
# (HostProcess: engine host + pipe), whose done stats carry decode, TTFT and offload. Results go
# to $OUT/gpu.txt when $OUT is set. Build plus measurement fit in 10 minutes on 16 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=.gpu
VERSION=0.3.36

prepare() {
  local sdist="$HOME/.cache/gemma-desktop/sdist/llama_cpp_python-$VERSION.tar.gz" tmp
  [ -f "$sdist" ] || { echo "no sdist at $sdist: run packaging/setup.sh first" >&2; exit 1; }
  rm -rf "$GPU"; mkdir -p "$GPU/py"; tmp=$(mktemp -d)
  tar -xzf "$sdist" -C "$tmp"
  local src="$tmp/llama_cpp_python-$VERSION"
  # The sdist is 76 MB; the build needs only ggml, libllama and libmtmd's sources.
  rm -rf "$src"/vendor/llama.cpp/{models,docs,examples,tests,gguf-py,media,scripts,.github} \
         "$src"/vendor/llama.cpp/tools/{server,run,tts,rpc,perplexity,imatrix,llama-bench}
  cp -r "$src/llama_cpp" "$GPU/py/"
  tar -cJf "$GPU/src.tar.xz" -C "$tmp" "llama_cpp_python-$VERSION"
  rm -rf "$tmp"
  # The 270M model is 253 MB; carry a copy only when GEMMA_GPU_MODEL names a small enough file.
  if [ -n "${GEMMA_GPU_MODEL:-}" ]; then cp "$GEMMA_GPU_MODEL" "$GPU/model.gguf"; fi
  du -sh "$GPU"
}

run() {
  local out="${OUT:-$GPU}" t0 src build
  t0=$(date +%s)
  src="$GPU/build-src"; build="$GPU/build"
  rm -rf "$src" && mkdir -p "$src" && tar -xJf "$GPU/src.tar.xz" -C "$src"
  src="$src/llama_cpp_python-$VERSION"
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
    -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF >"$out/cmake.log" 2>&1
  cmake --build "$build" -j "$(nproc)" >"$out/build.log" 2>&1
  mkdir -p "$GPU/py/llama_cpp/lib"
  find "$build" -name "lib*.so*" -type f -exec cp {} "$GPU/py/llama_cpp/lib/" \;
  (cd "$GPU/py/llama_cpp/lib" && for f in lib*.so.*.*; do
     base="${f%%.so.*}.so"; cp -n "$f" "$base"; cp -n "$f" "$base.0" 2>/dev/null || true; done)
  echo "build: $(( $(date +%s) - t0 )) s" | tee "$out/gpu.txt"
  local model="${GEMMA_GPU_MODEL:-$GPU/model.gguf}"
  [ -f "$model" ] || { echo "no model carried ($model): see prepare" | tee -a "$out/gpu.txt"; exit 1; }
  PYTHONPATH="$GPU/py:$PWD" python3 - "$model" <<'EOF' | tee -a "$out/gpu.txt"
import statistics, sys, time
sys.path.insert(0, "benchmarks")
from engine import PROMPT, RawLlama
from app.core.engine.host_process import HostProcess
from app.core.engine.messages import Done, Generate, Loaded, LoadModel, Ready
from app.core.engine.records import SamplingParams

model, tokens, runs = sys.argv[1], 128, 3
raw = RawLlama(model, 4, 4096)
host = HostProcess()
host.start()
host.wait_for(Ready, 120)
host.send(LoadModel(model, n_ctx=4096, n_gpu_layers=-1, n_threads=4))
host.wait_for(Loaded, 300)
rows = []
for i in range(runs):
    prompt = f"Run {i}. {PROMPT}"
    ttft, tps = raw.run(prompt, tokens)
    host.send(Generate(i + 1, prompt=prompt, params=SamplingParams(temperature=0.0, max_tokens=tokens)))
    done = host.wait_for(Done, 300)
    rows.append((ttft, tps, done.stats.ttft_ms, done.stats.decode_tok_s, done.stats.offload))
host.stop()
med = lambda k: statistics.median(r[k] for r in rows)
print(f"offload: {rows[-1][4]}")
print(f"raw: TTFT {med(0):.1f} ms, decode {med(1):.1f} tok/s")
print(f"app: TTFT {med(2):.1f} ms, decode {med(3):.1f} tok/s; app/raw decode {med(3) / med(1):.3f}")
EOF
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
