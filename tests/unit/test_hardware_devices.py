"""Device probe through the bundled libggml, RAM/disk from the OS, and the unusable-GPU warning."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.core import paths
from app.core.hardware.devices import (
    Device,
    HardwareReport,
    disk_free,
    ggml_devices,
    offload_warning,
    probe,
    probe_in_subprocess,
    ram_bytes,
    supports_gpu_offload,
)

GIB = 1024**3


def test_ggml_lists_the_cpu_device_with_memory():
    devices = ggml_devices()
    cpu = [d for d in devices if d.kind == "cpu"]
    assert cpu, devices
    total, _ = ram_bytes()
    # ggml's CPU device reports system memory.
    assert abs(cpu[0].total_bytes - total) < 0.05 * total
    # This build is the portable CPU build: no GPU offload.
    assert supports_gpu_offload() is False


def test_ram_and_disk_from_the_os():
    total, available = ram_bytes()
    meminfo = Path("/proc/meminfo").read_text()
    assert f"{total // 1024} kB" in meminfo
    assert 0 < available <= total
    folder = paths.models_dir() / "not" / "yet"
    assert abs(disk_free(folder) - shutil.disk_usage(paths.models_dir()).free) < 64 * 1024**2


def test_gpu_without_offload_gives_the_exact_reinstall_command():
    cpu = Device(0, "CPU", "Intel Xeon", "cpu", 8 * GIB, 16 * GIB)
    warning, command = offload_warning(["NVIDIA GeForce RTX 4070"], [cpu], offload=False)
    assert warning is not None and "NVIDIA GeForce RTX 4070" in warning
    assert command is not None
    assert command.startswith('CMAKE_ARGS="-DGGML_CUDA=on" ')
    assert command.endswith("-m pip install --force-reinstall --no-cache-dir "
                            "llama-cpp-python==0.3.36")
    assert command in warning
    _, amd = offload_warning(["AMD"], [cpu], offload=False)
    assert amd is not None and "-DGGML_HIP=on" in amd
    _, mac = offload_warning(["Apple"], [cpu], offload=False)
    assert mac is not None and "-DGGML_METAL=on" in mac
    # Integrated Intel graphics alone: no nagging. A usable GPU: nothing to say.
    assert offload_warning(["Intel"], [cpu], offload=False) == (None, None)
    cuda = Device(1, "CUDA0", "NVIDIA GeForce RTX 4070", "gpu", 11 * GIB, 12 * GIB)
    assert offload_warning(["NVIDIA GeForce RTX 4070"], [cpu, cuda], offload=True) == (None, None)


def test_probe_in_a_child_process_matches_this_machine():
    report = probe_in_subprocess(timeout=120)
    here = probe()
    assert [d.name for d in report.devices] == [d.name for d in here.devices]
    assert report.ram_total == here.ram_total
    # This machine has no GPU at all, so there is nothing to warn about.
    assert report.warning is None and report.gpus == []
    assert report.summary().startswith("no usable GPU · ")
    assert HardwareReport.from_dict(report.to_dict()) == report


def test_summary_names_the_gpu_with_free_and_total():
    report = HardwareReport(
        devices=(Device(0, "CUDA0", "NVIDIA RTX 4070", "gpu", 12 * GIB, 12 * GIB),),
        gpu_offload=True, ram_total=32 * GIB, ram_available=30 * GIB, disk_free=410 * GIB,
    )
    assert report.summary() == "NVIDIA RTX 4070, 12 GB free of 12 GB · 32 GB RAM · 410 GB free disk"
