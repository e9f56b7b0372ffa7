"""ggml's backends as runtime modules: find them, pick a CPU variant, load them through libllama's ggml.

A GGML_BACKEND_DL build registers nothing until its modules are loaded, and must load them through
the very libggml that libllama links: wheels copy symlinks, so `libggml.so` and `libggml.so.0` are
two libraries, and backends registered in the first are invisible to libllama. The CPU comes as one
library per instruction-set level; a variant that crashes (AMX kernels did on some Xeons) is
remembered per machine in the cache folder, so the next engine host takes the next safer one.
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import hashlib
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Extra folders searched first (a test's crashing variant, a user's CUDA module), os.pathsep-separated.
DIRS_VAR = "GEMMA_DESKTOP_BACKEND_DIRS"
_MODULE = re.compile(r"^(?:lib)?ggml-([a-z0-9_-]+?)(?:\.so|\.dylib|\.dll)$")
_NOT_BACKENDS = {"base"}


@dataclass(frozen=True)
class Module:
    """One backend module file and what became of it."""

    name: str
    path: str
    loaded: bool
    reason: str | None = None


@dataclass
class BackendReport:
    """What `load_backends` did, for doctor, the self-test and the `done` stats."""

    dynamic: bool = False
    modules: list[Module] = field(default_factory=list)
    cpu_variant: str = "built-in"
    cpu_note: str | None = None
    ggml_library: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_dirs() -> list[Path]:
    """Folders that may hold modules: the override, the wheel's bin/ and llama_cpp/lib."""
    dirs = [Path(p) for p in os.environ.get(DIRS_VAR, "").split(os.pathsep) if p]
    lib = _llama_lib_dir()
    if lib is not None:
        # The wheel puts the CPU variants in site-packages/bin, beside the llama_cpp package.
        dirs += [lib.parent.parent / "bin", lib]
    if getattr(sys, "frozen", False):
        dirs.append(Path(getattr(sys, "_MEIPASS", "")) / "bin")
    return [d for d in dirs if d.is_dir()]


def _llama_lib_dir() -> Path | None:
    from app.core.hardware.devices import llama_cpp_lib_dir

    return llama_cpp_lib_dir()


def module_files() -> dict[str, Path]:
    """Backend name ("cpu-zen4", "vulkan") to its file; the first folder that has one wins."""
    found: dict[str, Path] = {}
    for folder in search_dirs():
        for path in sorted(folder.iterdir()):
            match = _MODULE.match(path.name)
            if match and match.group(1) not in _NOT_BACKENDS and not path.is_symlink():
                found.setdefault(match.group(1), path)
    return found


def linked_ggml(folder: Path) -> ctypes.CDLL:
    """The libggml that libllama links (by its soname), loaded as the same library it uses."""
    for name in ("libggml.so.0", "libggml.0.dylib", "ggml.dll", "libggml.so", "libggml.dylib"):
        if (folder / name).exists():
            # dlopen by path finds the already-mapped copy (same file), not a second one.
            lib = ctypes.CDLL(str(folder / name), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
            lib._gemma_path = str(folder / name)  # type: ignore[attr-defined]
            return lib
    raise OSError(f"libggml not found in {folder}")


def _bind(lib: ctypes.CDLL) -> None:
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_reg_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_dev_count.argtypes = [ctypes.c_void_p]


def _score(path: Path) -> int:
    """The variant's own ggml_backend_score (0: this CPU lacks its instructions)."""
    try:
        handle = ctypes.CDLL(str(path))
    except OSError:
        return 0
    fn = getattr(handle, "ggml_backend_score", None)
    if fn is None:
        return 0
    fn.restype = ctypes.c_int
    score = int(fn())
    if hasattr(_ctypes, "dlclose"):
        _ctypes.dlclose(handle._handle)  # ggml_backend_load maps the chosen one again
    return score


def _why_not(name: str, path: Path) -> str:
    """Plain words for a module that did not load."""
    if name == "vulkan":
        try:
            ctypes.CDLL("libvulkan.so.1" if sys.platform.startswith("linux") else "vulkan-1")
        except OSError:
            return "libvulkan.so.1 not found (install the Vulkan loader, e.g. libvulkan1)"
        if not _vulkan_drivers():
            return "no Vulkan driver"
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:
        return f"could not be opened: {exc}"
    return "it did not register (no usable device or driver)"


# -- which CPU variant this machine may use --------------------------------------------------
def _state_path() -> Path:
    from app.core import paths

    return paths.cache_dir() / "cpu-variant.json"


def _fingerprint() -> str:
    text = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = cpuinfo.read_text(errors="replace").splitlines()
        text = "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    return hashlib.sha256((text or os.uname().machine).encode()).hexdigest()[:16]


def _read_state() -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(_state_path().read_text())
    except (OSError, ValueError):
        state = {}
    if state.get("cpu") != _fingerprint():
        state = {"cpu": _fingerprint(), "failed": []}
    return state


def _write_state(state: dict[str, Any]) -> None:
    path = _state_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def choose_cpu_variant(scores: dict[str, int], trial: bool) -> tuple[str | None, str | None]:
    """(variant to load, note): a proven one, else the best not known to crash on this machine.

    trial: this process will decode (the engine host), so an unproven choice is put on trial.
    """
    state = _read_state()
    note = state.get("note")
    tried = state.get("trying")
    crashed = bool(tried) and not _alive(int(state.get("pid", 0)))
    if crashed:
        # The host that put it on trial ended without reaching its first decode: it crashed there.
        state["failed"] = sorted(set(state.get("failed", [])) | {tried})
        state["trying"] = None
        note = f"the {tried} CPU variant crashed during load or the first decode"
    failed = state.setdefault("failed", [])
    usable = sorted((s, n) for n, s in scores.items() if s > 0 and n not in failed)
    if not usable:
        state["note"] = note
        if crashed:
            _write_state(state)
        return None, note
    works = state.get("works")
    chosen = works if works in dict((n, s) for s, n in usable) else usable[-1][1]
    if crashed:
        note = f"{note}; now trying {chosen}"
    state["note"] = note
    if trial and chosen != works:
        # A variant that already decoded here is proven; only an unproven one is put on trial.
        state["trying"], state["pid"] = chosen, os.getpid()
    if crashed or trial:  # a look from doctor or the device probe changes nothing
        _write_state(state)
    return chosen, note


def mark_cpu_variant_working() -> None:
    """The first decode went through: the variant on trial is this machine's choice from now on."""
    global _proven
    if _proven or _report is None or not _report.dynamic:
        return
    _proven = True
    state = _read_state()
    if state.get("trying") and state.get("pid") == os.getpid():
        state["works"], state["trying"] = state["trying"], None
        state["note"] = None if not state.get("failed") else (
            f"{state['works']} is used: {', '.join(state['failed'])} crashed on this machine")
        _write_state(state)


_report: BackendReport | None = None
_proven = False


def load_backends(trial: bool = False) -> BackendReport:
    """Load every module once per process (before any model): the CPU variant first, then GPUs.

    trial: the caller decodes and calls `mark_cpu_variant_working` after its first decode.
    """
    global _report
    if _report is not None:
        return _report
    report = BackendReport()
    folder = _llama_lib_dir()
    files = module_files()
    if folder is None:
        _report = report
        return report
    lib = linked_ggml(folder)
    _bind(lib)
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    if lib.ggml_backend_reg_count() > 0:
        _report = report  # a build with its backends linked in: nothing to load
        return report
    report.dynamic, report.ggml_library = True, str(getattr(lib, "_gemma_path", ""))
    cpus = {n: p for n, p in files.items() if n == "cpu" or n.startswith("cpu-")}
    chosen, report.cpu_note = choose_cpu_variant({n: _score(p) for n, p in cpus.items()}, trial)
    for variant, path in cpus.items():
        if variant != chosen:
            report.modules.append(Module(variant, str(path), False, "not chosen"))
    if chosen is not None:
        reg = lib.ggml_backend_load(str(cpus[chosen]).encode())
        report.modules.append(Module(chosen, str(cpus[chosen]), bool(reg),
                                     None if reg else _why_not("cpu", cpus[chosen])))
        report.cpu_variant = chosen.removeprefix("cpu-") if reg else "none"
    for name, path in files.items():
        if name == "cpu" or name.startswith("cpu-"):
            continue
        reg = lib.ggml_backend_load(str(path).encode())
        reason = None
        if not reg:
            reason = _why_not(name, path)
        elif lib.ggml_backend_reg_dev_count(reg) == 0:
            reason = _no_devices(name)
        report.modules.append(Module(name, str(path), bool(reg), reason))
    _report = report
    return report


def _vulkan_drivers() -> list[Path]:
    """The ICD manifests the Vulkan loader would read (the variables replace the folders)."""
    given = os.environ.get("VK_DRIVER_FILES") or os.environ.get("VK_ICD_FILENAMES")
    if given:
        return [p for p in map(Path, given.split(os.pathsep)) if p.is_file()]
    folders = ["/etc/vulkan/icd.d", "/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"]
    return [p for f in folders if Path(f).is_dir() for p in Path(f).glob("*.json")]


def _no_devices(name: str) -> str:
    if name != "vulkan":
        return f"no {name} device"
    if not _vulkan_drivers():
        return "no Vulkan driver"
    return ("no Vulkan GPU (a CPU-type device such as lavapipe is used only when "
            "GGML_VK_VISIBLE_DEVICES names it)")


def report() -> BackendReport | None:
    """What this process loaded (None before `load_backends`)."""
    return _report


_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_BUFFER = re.compile(r"([\w.-]+)\s+(?:model|KV|compute)\s+buffer size", re.I)
_offload_cache: dict[int, dict[str, Any]] = {}


def _host_buffer(name: str) -> bool:
    """CPU buffers and a GPU backend's pinned host buffers ("Vulkan_Host", "CUDA_Host")."""
    return name.upper().startswith("CPU") or name.endswith("_Host")


def offload_from_log(lines: list[str], model_key: int) -> dict[str, Any]:
    """llama.cpp's own "offloaded X/Y layers" count and device, remembered per loaded model.

    The log keeps a few hundred lines; once the load's lines have scrolled out the remembered
    count of this model is used.
    """
    found: dict[str, Any] = {}
    devices: list[str] = []
    for line in lines:
        m = _OFFLOADED.search(line)
        if m:
            found = {"layers": int(m.group(1)), "of": int(m.group(2))}
        b = _BUFFER.search(line)
        if b and not _host_buffer(b.group(1)) and b.group(1) not in devices:
            devices.append(b.group(1))
    if found:
        found["device"] = ",".join(devices) if found["layers"] and devices else "CPU"
        _offload_cache.clear()
        _offload_cache[model_key] = found
        return found
    return _offload_cache.get(model_key, {})


def cpu_variant() -> str:
    """The CPU variant this process loaded ("built-in" for a build without modules)."""
    return _report.cpu_variant if _report else "built-in"


def parse_gpu_layers(text: str) -> int | None:
    """The CLI's --gpu-layers value: "auto" (None: as many as fit), "all" (-1), or a count."""
    value = text.strip().lower()
    if value == "auto":
        return None
    if value == "all":
        return -1
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"--gpu-layers takes auto, all or a number of layers, not {text!r}") from None
    if n < -1:
        raise ValueError(f"--gpu-layers takes auto, all or a number of layers, not {text!r}")
    return n


_CRASH_SIGNALS = (-11, -4, -7, -8, -6)  # SIGSEGV, SIGILL, SIGBUS, SIGFPE, SIGABRT


def host_ended(exit_code: int) -> str | None:
    """Bookkeeping for a host that ended unasked: the CPU variant it crashed on, if any.

    Only a native crash counts against the variant; a host killed from outside (out of memory,
    a test) leaves it untried rather than marked bad for this machine for good.
    """
    state = _read_state()
    tried = state.get("trying")
    if not tried or _alive(int(state.get("pid", 0))):
        return None
    state["trying"] = None
    if exit_code not in _CRASH_SIGNALS:
        _write_state(state)
        return None
    state["failed"] = sorted(set(state.get("failed", [])) | {tried})
    state["note"] = f"the {tried} CPU variant crashed during load or the first decode"
    _write_state(state)
    return str(tried)


def release_freed_memory() -> None:
    """Hand memory freed with a model back to the system now (glibc keeps freed heap pages in
    its arenas otherwise, so a switch would not show the old model's memory as free)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
