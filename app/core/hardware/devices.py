"""What this machine has: ggml's backend devices (CUDA, Metal, Vulkan, ROCm, CPU), RAM and disk.

Devices come from llama-cpp-python's bundled libggml through ctypes, so every GPU backend is
seen through one code path. Asking a CUDA device for its free memory creates a CUDA context that
holds VRAM for the life of the process, so the GUI runs the probe in a child process
(`probe_in_subprocess`); `python -m app.core.hardware.devices` prints the JSON report.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.core.hardware.vulkan_limits import storage_buffer_ranges

LLAMA_CPP_VERSION = "0.3.36"
_DEV_KINDS = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}
_GIB = 1024**3


@dataclass(frozen=True)
class Device:
    """One ggml backend device with its memory (free is what the planner plans against)."""

    index: int
    name: str
    description: str
    kind: str
    free_bytes: int
    total_bytes: int
    max_tensor_bytes: int = 0  # the largest tensor its kernels may read; 0: no limit known


@dataclass(frozen=True)
class HardwareReport:
    """Everything the planner and `doctor` need to know about the machine."""

    devices: tuple[Device, ...] = ()
    gpu_offload: bool = False
    ram_total: int = 0
    ram_available: int = 0
    disk_free: int = 0
    models_dir: str = ""
    detected_gpus: tuple[str, ...] = ()
    warning: str | None = None
    reinstall_command: str | None = None
    backend_error: str | None = None
    backends: dict[str, Any] = field(default_factory=dict)
    platform: str = field(default_factory=lambda: f"{platform.system()} {platform.machine()}")

    @property
    def gpus(self) -> list[Device]:
        return [d for d in self.devices if d.kind in ("gpu", "igpu")]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareReport:
        values = dict(data)
        values["devices"] = tuple(Device(**d) for d in data.get("devices", ()))
        values["detected_gpus"] = tuple(data.get("detected_gpus", ()))
        return cls(**values)

    def summary(self) -> str:
        """One line for the welcome screen: GPUs, RAM, free disk."""
        parts = [
            f"{d.description or d.name}, {d.free_bytes / _GIB:.0f} GB free of "
            f"{d.total_bytes / _GIB:.0f} GB"
            for d in self.gpus
        ]
        if not parts:
            parts.append("no usable GPU")
        parts.append(f"{self.ram_total / _GIB:.0f} GB RAM")
        parts.append(f"{self.disk_free / _GIB:.0f} GB free disk")
        return " · ".join(parts)


# -- libggml through ctypes ------------------------------------------------------------------
def llama_cpp_lib_dir() -> Path | None:
    """The folder holding llama-cpp-python's shared libraries, found without importing it."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    for candidate in (root / "lib", root):
        if any(candidate.glob("*ggml*")):
            return candidate
    return None


def _find_lib(folder: Path, stem: str) -> Path | None:
    for name in (f"lib{stem}.so", f"lib{stem}.dylib", f"{stem}.dll", f"lib{stem}.dll"):
        if (folder / name).exists():
            return folder / name
    return None


def _bind_ggml(folder: Path) -> ctypes.CDLL:
    from app.core.engine.backends import linked_ggml

    lib = linked_ggml(folder)
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_count.argtypes = []
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(lib, fn).restype = ctypes.c_char_p
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_memory.restype = None
    lib.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t),
    ]
    return lib


def ggml_devices(folder: Path | None = None) -> list[Device]:
    """Every device the bundled ggml registers, with free/total memory as ggml reports it."""
    folder = folder or llama_cpp_lib_dir()
    if folder is None:
        raise OSError("llama-cpp-python is not installed")
    from app.core.engine.backends import load_backends

    # Builds with dynamically loaded backends (GGML_BACKEND_DL) register them only on request,
    # and only through the libggml that libllama links.
    load_backends()
    lib = _bind_ggml(folder)
    devices = []
    vulkan_ranges: dict[str, int] | None = None
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        name = (lib.ggml_backend_dev_name(dev) or b"").decode(errors="replace")
        description = (lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace")
        max_tensor = 0
        if name.startswith("Vulkan"):
            if vulkan_ranges is None:
                vulkan_ranges = storage_buffer_ranges()
            max_tensor = vulkan_ranges.get(description, 0)
        devices.append(Device(
            index=i,
            name=name,
            description=description,
            kind=_DEV_KINDS.get(lib.ggml_backend_dev_type(dev), "other"),
            free_bytes=int(free.value),
            total_bytes=int(total.value),
            max_tensor_bytes=max_tensor,
        ))
    return devices


def supports_gpu_offload(folder: Path | None = None) -> bool:
    """llama_supports_gpu_offload() of the installed build."""
    folder = folder or llama_cpp_lib_dir()
    if folder is None:
        return False
    path = _find_lib(folder, "llama")
    if path is None:
        return False
    lib = ctypes.CDLL(str(path))
    lib.llama_supports_gpu_offload.restype = ctypes.c_bool
    lib.llama_supports_gpu_offload.argtypes = []
    return bool(lib.llama_supports_gpu_offload())


# -- the OS: RAM, disk, GPUs the build may not see --------------------------------------------
def ram_bytes() -> tuple[int, int]:
    """(total, available) system memory in bytes."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        values: dict[str, int] = {}
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024
        total = values.get("MemTotal", 0)
        return total, values.get("MemAvailable", values.get("MemFree", 0))
    if sys.platform == "darwin":
        return _ram_macos()
    if sys.platform == "win32":
        return _ram_windows()
    pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    avail = os.sysconf("SC_AVPHYS_PAGES")
    return pages * size, avail * size


def _ram_macos() -> tuple[int, int]:
    total = int(subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True,
                               timeout=5).stdout.strip() or 0)
    out = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=5).stdout
    page = 16384 if "16384" in out.splitlines()[0] else 4096
    free = 0
    for line in out.splitlines():
        if line.startswith(("Pages free", "Pages inactive", "Pages speculative", "Pages purgeable")):
            free += int(line.split(":")[1].strip().rstrip(".")) * page
    return total, free


def _ram_windows() -> tuple[int, int]:
    class MemoryStatus(ctypes.Structure):
        _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                    ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                    ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                    ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                    ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

    status = MemoryStatus()
    status.dwLength = ctypes.sizeof(MemoryStatus)
    ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))  # type: ignore[attr-defined]
    return int(status.ullTotalPhys), int(status.ullAvailPhys)


def disk_free(folder: Path) -> int:
    """Free bytes on the file system holding `folder` (its nearest existing parent)."""
    path = folder
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


_PCI_VENDORS = {"0x10de": "NVIDIA", "0x1002": "AMD", "0x8086": "Intel"}


def os_gpus() -> list[str]:
    """GPUs the operating system shows, whatever llama.cpp was built for (vendor names)."""
    found: list[str] = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=5,
            ).stdout
            found += [f"NVIDIA {n.strip()}".replace("NVIDIA NVIDIA", "NVIDIA")
                      for n in out.splitlines() if n.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    if not found and (Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()):
        found.append("NVIDIA")
    drm = Path("/sys/class/drm")
    if drm.is_dir():
        for vendor_file in sorted(drm.glob("card[0-9]*/device/vendor")):
            vendor = _PCI_VENDORS.get(vendor_file.read_text().strip())
            if vendor and not any(g.startswith(vendor) for g in found):
                found.append(vendor)
    if sys.platform == "darwin" and platform.machine() == "arm64":
        found.append("Apple")
    return found


def reinstall_command(vendor: str) -> str:
    """The exact command that rebuilds llama-cpp-python with this vendor's GPU backend."""
    flag = {"NVIDIA": "-DGGML_CUDA=on", "AMD": "-DGGML_HIP=on", "Apple": "-DGGML_METAL=on"}.get(
        vendor, "-DGGML_VULKAN=on"
    )
    return (f'CMAKE_ARGS="{flag}" {sys.executable} -m pip install --force-reinstall '
            f"--no-cache-dir llama-cpp-python=={LLAMA_CPP_VERSION}")


def offload_warning(
    seen: list[str], devices: list[Device], offload: bool
) -> tuple[str | None, str | None]:
    """(warning, reinstall command) when the OS shows a GPU the installed build cannot use."""
    usable = [d for d in devices if d.kind in ("gpu", "igpu")]
    # Integrated Intel graphics alone are not worth a rebuild; a discrete or Apple GPU is.
    serious = [g for g in seen if not g.startswith("Intel")]
    if not serious or (offload and usable):
        return None, None
    vendor = serious[0].split()[0]
    command = reinstall_command(vendor)
    warning = (f"This machine has a {serious[0]} GPU, but the installed llama.cpp was built "
               "without support for it, so models would run on the CPU only. "
               f"Reinstall it with GPU support: {command}")
    return warning, command


def probe(models_dir: Path | None = None) -> HardwareReport:
    """Probe everything in this process (creates GPU contexts: prefer probe_in_subprocess)."""
    from app.core import paths

    folder = models_dir or paths.models_dir()
    total, available = ram_bytes()
    devices: list[Device] = []
    error = None
    offload = False
    backends: dict[str, Any] = {}
    try:
        devices = ggml_devices()
        offload = supports_gpu_offload()
        from app.core.engine.backends import report

        loaded = report()
        backends = loaded.to_dict() if loaded else {}
    except (OSError, AttributeError) as exc:
        error = f"llama.cpp could not be asked about devices: {exc}"
    seen = os_gpus()
    warning, command = offload_warning(seen, devices, offload)
    return HardwareReport(
        devices=tuple(devices), gpu_offload=offload, ram_total=total, ram_available=available,
        disk_free=disk_free(folder), models_dir=str(folder), detected_gpus=tuple(seen),
        warning=warning, reinstall_command=command, backend_error=error, backends=backends,
    )


def probe_command() -> list[str]:
    """The command line that prints the JSON report from a fresh process (frozen or not)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--probe-devices"]
    return [sys.executable, "-m", "app.core.hardware.devices"]


def probe_in_subprocess(timeout: float = 60.0) -> HardwareReport:
    """Probe in a child process, so no GPU context ever lives in the caller."""
    root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(probe_command(), capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"The device probe failed: {done.stderr.strip()[-500:]}")
    return HardwareReport.from_dict(json.loads(done.stdout))


def main() -> int:
    print(json.dumps(probe().to_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
