"""`models list|recommend|plan|download|remove` and `doctor`: the model manager from a terminal."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from app.core import paths
from app.core.catalog import CatalogError, Entry, load_catalog
from app.core.catalog.catalog import refresh_from_hub
from app.core.hardware.memory import KV_TYPES, Options
from app.core.hardware.planner import (
    BADGE_TEXT,
    GIB,
    Machine,
    Plan,
    catalog_candidates,
    fit,
    recommend,
)
from app.core.hardware.shapes import cached_shapes, refresh_shapes
from app.core.hardware.speed import MachineSpeed

HYPOTHETICAL = "hypothetical machine"


def _machine(args: argparse.Namespace) -> tuple[Machine, str]:
    """The real machine, or the hypothetical one the flags describe (missing sizes: real RAM)."""
    hypothetical = any(v is not None for v in (args.vram_gib, args.ram_gib, args.disk_gib))
    if hypothetical:
        from app.core.hardware.devices import ram_bytes

        ram_gib = args.ram_gib if args.ram_gib is not None else ram_bytes()[0] / GIB
        m = Machine.hypothetical(args.vram_gib or 0.0, ram_gib, args.disk_gib)
        return m, HYPOTHETICAL
    from app.core.hardware.devices import probe
    from app.core.hardware.planner import machine_from_report

    report = probe()
    m = machine_from_report(report)
    if report.warning:
        print(report.warning, file=sys.stderr)
    return m, report.summary()


def _speed(machine: Machine, summary: str) -> MachineSpeed:
    """This machine's measured speed (cached); a GPU's bandwidth is assumed until measured."""
    from app.core.hardware.speed import machine_speed, with_hypothetical_gpu

    kind = "igpu" if machine.unified else "gpu"
    if summary == HYPOTHETICAL:
        base = machine_speed()
        return with_hypothetical_gpu(base, machine.gpu_name, kind) if machine.has_gpu else base
    return machine_speed(((machine.gpu_name or "GPU", kind),) if machine.has_gpu else ())


def _settings_floor_kv() -> tuple[float, str]:
    from app.core.storage.settings import load_settings

    settings, _ = load_settings()
    return settings.min_decode_tok_s, settings.kv_cache_type


def _installed_ids(entries: list[Entry]) -> set[str]:
    from app.core.download import ModelStore

    store = ModelStore()
    return {e.id for e in entries if store.find(e.repo.repo_id, e.file.filename) is not None}


def _store_entry(e: Entry) -> Any:
    from app.core.download import ModelStore

    return ModelStore().find(e.repo.repo_id, e.file.filename)


def _plan_dict(plan: Plan) -> dict[str, Any]:
    c, est = plan.candidate, plan.estimate
    out: dict[str, Any] = {
        "model_id": c.model_id if c else None, "variant": c.variant if c else None,
        "quant": c.quant if c else None, "n_ctx": plan.n_ctx, "gpu_layers": plan.gpu_layers,
        "n_gpu_layers": plan.n_gpu_layers, "badge": plan.badge, "explanation": plan.explanation,
        "n_cpu_moe": plan.n_cpu_moe,
        "installed": c.installed if c else False,
        "download_bytes": c.download_bytes if c else 0,
        "approximate": c.shape.approximate if c else True,
        "options": {"flash_attn": plan.options.flash_attn, "swa_full": plan.options.swa_full,
                    "n_ubatch": plan.options.n_ubatch, "n_batch": plan.options.n_batch,
                    "kv_type": plan.options.kv_type},
        "predicted_decode_tok_s": (round(plan.predicted_decode_tok_s, 1)
                                   if plan.predicted_decode_tok_s is not None else None),
    }
    if est is not None:
        out["estimate"] = {
            "gpu_bytes": est.gpu_total, "cpu_bytes": est.cpu_total, "kv_bytes": est.kv,
            "gpu_weights": est.gpu_weights, "cpu_weights": est.cpu_weights,
            "gpu_compute": est.gpu_compute, "cpu_compute": est.cpu_compute,
            "projector": est.projector,
        }
    return out


def _tok_text(tok_s: object) -> str:
    return f"≈ {tok_s} tok/s" if isinstance(tok_s, float) else ""


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GB"


def _cmd_list(args: argparse.Namespace) -> int:
    from app.core.hardware.speed import predict_for_estimate

    catalog = load_catalog()
    entries = catalog.entries()
    installed = _installed_ids(entries)
    machine, summary = _machine(args)
    floor, kv_type = _settings_floor_kv()
    opts = Options(kv_type=kv_type)
    speed = _speed(machine, summary)
    cands = {c.model_id: c for c in catalog_candidates(catalog, headers=cached_shapes(),
                                                        installed=installed, official_only=False)}
    usable = {e.id for e in catalog.entries(official_only=True)}
    best = recommend([c for c in cands.values() if c.model_id in usable], machine, opts,
                     speed=speed, floor=floor)
    rows = []
    for e in entries:
        plan = fit(cands[e.id], machine, 8192, opts)
        need = plan.estimate.total if plan.estimate else 0
        tok_s = (predict_for_estimate(cands[e.id].shape, plan.estimate, speed, kv_type).decode_tok_s
                 if plan.estimate is not None and plan.fits else None)
        rows.append({
            "id": e.id, "variant": e.variant.id, "quant": e.quant, "repo_id": e.repo.repo_id,
            "filename": e.file.filename, "size": e.file.size,
            "mmproj": e.mmproj.filename if e.mmproj else None,
            "inputs": list(e.variant.inputs), "installed": e.id in installed,
            "unverified": e.id in installed and not _store_entry(e).verified,
            "memory_bytes_8k": need, "badge": plan.badge, "verified": e.repo.verified,
            "predicted_decode_tok_s": round(tok_s, 1) if tok_s is not None else None,
            "recommended": best.candidate is not None and best.candidate.model_id == e.id,
        })
    if args.json:
        print(json.dumps({"machine": summary, "models": rows}, indent=1))
        return 0
    print(f"Machine: {summary}")
    for r in rows:
        mark = "*" if r["recommended"] else " "
        have = ("installed" + (" (unverified: no sha256 from the Hub)" if r["unverified"] else "")
                if r["installed"] else "")
        print(f"{mark} {r['id']:<18} {r['size'] / GIB:6.1f} GB file  "
              f"{r['memory_bytes_8k'] / GIB:6.1f} GB at 8k  {BADGE_TEXT[str(r['badge'])]:<17} "
              f"{_tok_text(r['predicted_decode_tok_s']):<14} {have}")
    print("* recommended")
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    entries = catalog.entries(official_only=True)
    installed = _installed_ids(entries)
    machine, summary = _machine(args)
    floor, kv_type = _settings_floor_kv()
    floor = args.floor if args.floor is not None else floor
    plan = recommend(catalog_candidates(catalog, headers=cached_shapes(), installed=installed),
                     machine, Options(kv_type=kv_type), speed=_speed(machine, summary), floor=floor)
    if args.json:
        data = _plan_dict(plan)
        data["machine"] = summary
        data["floor_tok_s"] = floor
        if plan.candidate is not None:
            entry = catalog.entry(plan.candidate.model_id)
            data["repo_id"] = entry.repo.repo_id
            data["filename"] = entry.file.filename
            data["mmproj"] = entry.mmproj.filename if entry.mmproj else None
        data["alternatives"] = [_plan_dict(p) for p in plan.alternatives]
        print(json.dumps(data, indent=1))
    else:
        print(f"Machine: {summary}")
        print(plan.explanation)
        if plan.estimate is not None:
            print(f"Memory: {_gib(plan.estimate.gpu_total)} GPU, {_gib(plan.estimate.cpu_total)} RAM")
        for p in sorted(plan.alternatives, key=lambda p: -(p.predicted_decode_tok_s or 0)):
            if p.candidate is not None:
                print(f"  also weighed: {p.candidate.variant} {p.candidate.quant} "
                      f"≈ {p.predicted_decode_tok_s or 0:.1f} tok/s")
    return 0 if plan.fits else 1


def _cmd_plan(args: argparse.Namespace) -> int:
    from app.cli.models_plan import plan_gguf

    machine, summary = _machine(args)
    _, kv_type = _settings_floor_kv()
    data = plan_gguf(Path(args.path), machine, _speed(machine, summary), args.ctx, args.gpu_layers,
                     args.kv_type or kv_type)
    data["machine"] = summary
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print(f"Machine: {summary}")
        print(data["explanation"])
        est = data.get("estimate") or {}
        print(f"Memory: {_gib(est.get('gpu_bytes', 0))} GPU, {_gib(est.get('cpu_bytes', 0))} RAM; "
              f"predicted decode ≈ {data['predicted_decode_tok_s']} tok/s")
    return 0 if data["fits"] else 1


def _progress(label: str) -> Any:
    def show(p: Any) -> None:
        pct = 100.0 * p.done / p.total if p.total else 0.0
        speed = p.bytes_per_s / 1024**2
        print(f"\r{label}: {pct:5.1f}%  {p.done / GIB:.2f}/{p.total / GIB:.2f} GB  "
              f"{speed:6.1f} MB/s", end="", file=sys.stderr, flush=True)

    return show


def _cmd_download(args: argparse.Namespace) -> int:
    from app.core.download import DownloadError, ModelStore

    entry = load_catalog().entry(args.id)
    store = ModelStore()
    files = [entry.file] + ([entry.mmproj] if entry.mmproj and not args.no_mmproj else [])
    try:
        for f in files:
            path = store.download(entry.repo.repo_id, f.filename, entry.repo.revision,
                                  on_progress=_progress(f.filename))
            print(file=sys.stderr)
            print(path)
    except DownloadError as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    from app.core.download import ModelStore

    catalog = load_catalog()
    entry = catalog.entry(args.id)
    store = ModelStore()
    if store.find(entry.repo.repo_id, entry.file.filename) is None:
        print(f"{entry.id} is not installed.", file=sys.stderr)
        return 1
    store.remove(entry.repo.repo_id, entry.file.filename)
    # The projector goes too, unless another installed quant of the same repository needs it.
    others = [e for e in catalog.entries() if e.repo.repo_id == entry.repo.repo_id
              and e.id != entry.id and store.find(e.repo.repo_id, e.file.filename)]
    if entry.mmproj and not others:
        store.remove(entry.repo.repo_id, entry.mmproj.filename)
    print(f"Removed {entry.id}.")
    return 0


def _cmd_refresh(_args: argparse.Namespace) -> int:
    from app.core.download import ModelStore

    store = ModelStore()
    catalog = refresh_from_hub(store.list_remote_files)
    entries = catalog.entries(official_only=False)

    def local(entry: Any) -> Path | None:
        found = store.find(entry.repo.repo_id, entry.file.filename)
        return Path(found.path) if found else None

    shapes = refresh_shapes(entries, local_path=local)
    read = sum(1 for e in entries if e.id in shapes)
    print(f"{len(entries)} models listed; headers read for {read}.")
    return 0


def run_models(argv: list[str]) -> int:
    """`models list|recommend|download|remove`; returns the exit status."""
    parser = argparse.ArgumentParser(prog="main.py models", description="Gemma 4 models")
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("list", "recommend"):
        p = sub.add_parser(name)
        p.add_argument("--json", action="store_true")
        p.add_argument("--vram-gib", type=float, default=None, help="hypothetical GPU memory")
        p.add_argument("--ram-gib", type=float, default=None, help="hypothetical RAM")
        p.add_argument("--disk-gib", type=float, default=None, help="hypothetical free disk")
        if name == "recommend":
            p.add_argument("--floor", type=float, default=None,
                           help="decode tok/s the pick must reach (default: the setting, 8)")
    p = sub.add_parser("plan", help="plan a local GGUF on this machine")
    p.add_argument("path")
    p.add_argument("--ctx", type=int, default=None, help="context length (default: the plan's)")
    p.add_argument("--gpu-layers", default="auto", help="auto | all | N (as chat's flag)")
    p.add_argument("--kv-type", choices=KV_TYPES, default=None)
    p.add_argument("--json", action="store_true")
    for flag in ("--vram-gib", "--ram-gib", "--disk-gib"):
        p.add_argument(flag, type=float, default=None)
    p = sub.add_parser("download")
    p.add_argument("id", help="e.g. E4B-Q4_K_M or owner/repo:Q4_K_M")
    p.add_argument("--no-mmproj", action="store_true", help="skip the image/audio projector")
    p = sub.add_parser("remove")
    p.add_argument("id")
    sub.add_parser("refresh", help="re-list the repositories and read each model's GGUF header "
                                   "(HTTP ranges, no weights) so plans are exact offline")
    args = parser.parse_args(argv)
    handlers = {"list": _cmd_list, "recommend": _cmd_recommend, "download": _cmd_download,
                "remove": _cmd_remove, "refresh": _cmd_refresh, "plan": _cmd_plan}
    try:
        return handlers[args.action](args)
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        return 2


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _print_backends(backends: dict[str, Any]) -> None:
    """The backend modules found, which loaded (and why not), and the CPU variant."""
    if not backends.get("dynamic"):
        print("Backends: built into llama.cpp (no runtime modules)")
        return
    print(f"CPU variant: {backends.get('cpu_variant')}")
    if backends.get("cpu_note"):
        print(f"  {backends['cpu_note']}")
    for m in backends.get("modules", ()):
        if m["reason"] == "not chosen":
            continue
        state = "loaded" if m["loaded"] else "not loaded"
        print(f"  module {m['name']:<16} {state}" + (f": {m['reason']}" if m["reason"] else ""))
    others = [m["name"] for m in backends.get("modules", ()) if m["reason"] == "not chosen"]
    if others:
        print(f"  other CPU variants found: {', '.join(others)}")


def run_doctor(argv: list[str]) -> int:
    """`doctor [--json]`: devices, GPU support of the build, versions, folders."""
    parser = argparse.ArgumentParser(prog="main.py doctor")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from app.core.hardware.devices import probe

    report = probe()
    data: dict[str, Any] = report.to_dict()
    data["summary"] = report.summary()
    data["versions"] = {
        "python": platform.python_version(), "llama-cpp-python": _version("llama_cpp_python"),
        "PySide6": _version("PySide6"), "huggingface_hub": _version("huggingface_hub"),
    }
    data["folders"] = {name: str(getattr(paths, f"{name}_dir")()) for name in
                       ("config", "data", "cache", "log", "models")}
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    print(f"Machine:  {report.summary()}  ({report.platform})")
    print(f"GPU offload in this llama.cpp build: {'yes' if report.gpu_offload else 'no'}")
    for d in report.devices:
        print(f"  [{d.index}] {d.kind:<5} {d.name:<10} {d.description}  "
              f"{d.free_bytes / GIB:.1f} GB free of {d.total_bytes / GIB:.1f} GB")
    if report.backend_error:
        print(f"  {report.backend_error}")
    _print_backends(report.backends)
    if report.detected_gpus:
        print(f"GPUs the system shows: {', '.join(report.detected_gpus)}")
    if report.warning:
        print(f"WARNING: {report.warning}")
    for k, v in data["versions"].items():
        print(f"{k:>17}: {v or 'not installed'}")
    for k, v in data["folders"].items():
        print(f"{k:>17}: {v}")
    return 0
