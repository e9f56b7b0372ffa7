"""What the model manager and the welcome screen share: catalog, store, downloads, machine, loading.

Both screens show the same downloads (a download started on the welcome screen keeps running,
and shows its progress, in the manager), so they read one `ModelsContext` instead of owning
their own stores and jobs. Slow work (Hub listings, imports with hashing) runs in
`BackgroundTask` threads; planning is pure arithmetic and stays on the GUI thread.

Just over 400 lines: the one object both screens hold (catalog, files, downloads, offline mode,
loading); splitting it would hand half-shared state between two objects.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.catalog import (
    Catalog,
    Entry,
    add_user_repo,
    listing_age,
    load_catalog,
    refresh_from_hub,
)
from app.core.download import AuthRequiredError, ModelStore, env_offline
from app.core.download.store import LOCAL_REPO, InstalledModel, is_projector
from app.core.engine.messages import DEFAULT_N_CTX
from app.core.hardware.devices import ram_bytes
from app.core.hardware.memory import Options
from app.core.hardware.planner import Candidate, Machine, Plan, catalog_candidates, fit, recommend
from app.core.hardware.shapes import cached_shapes, refresh_shapes
from app.services.downloads import DownloadJob, DownloadManager, FileSpec
from app.services.hardware_probe import HardwareProbe
from app.services.operations import Operation

log = logging.getLogger(__name__)

LISTING_MAX_AGE_S = 24 * 3600  # the first screen re-lists the Hub when its listing is older
PAIRS_FILE = "local_projectors.json"  # imported model file name -> imported projector file name


class BackgroundTask(QObject):
    """One callable in the background (an Operation); its result or its error arrives as a signal.

    `fn(report)` may call `report(done, total)` to move a progress bar; `cancel` is the event the
    work watches.
    """

    sig_progress = Signal("qint64", "qint64")  # type: ignore[arg-type]
    sig_finished = Signal(object)
    sig_failed = Signal(str)

    def __init__(self, name: str, fn: Callable[[Callable[[int, int], None]], Any],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.cancel = threading.Event()
        self._op = Operation(lambda ctx: fn(lambda done, total: ctx.item((done, total))),
                             name=name, parent=self)
        self._op.sig_item.connect(self._on_op_item)
        self._op.sig_succeeded.connect(self._on_op_succeeded)
        self._op.sig_failed.connect(self._on_op_failed)

    def start(self) -> None:
        self._op.start()

    def running(self) -> bool:
        return self._op.is_running()

    def wait(self, timeout: float | None = None) -> bool:
        return self._op.wait(int((timeout if timeout is not None else 86_400) * 1000))

    def _on_op_item(self, progress: tuple[int, int]) -> None:
        self.sig_progress.emit(*progress)

    # The worker has delivered its last signal: joining first means running() is False in slots.
    def _on_op_succeeded(self, result: object) -> None:
        self.wait(5)
        self.sig_finished.emit(result)

    def _on_op_failed(self, message: str) -> None:
        self.wait(5)
        self.sig_failed.emit(message)


def is_auth_failure(message: str, repo_id: str) -> bool:
    """Does a download's failure message say the repository needs a (better) token?

    DownloadJob reports failures as text; AuthRequiredError's two texts are exact, so compare.
    """
    return message in {str(AuthRequiredError(repo_id, 401, had)) for had in (False, True)}


class ModelsContext(QObject):
    """The app's models: catalog entries with fit plans, installed files, download jobs, loading."""

    sig_catalog_changed = Signal()
    sig_installed_changed = Signal()
    sig_machine_changed = Signal()
    sig_offline_changed = Signal(bool)
    # model path, projector path or None, n_ctx, n_gpu_layers (-1 = every layer)
    sig_use_requested = Signal(str, object, int, int)

    def __init__(self, settings: Any, store: ModelStore | None = None,
                 downloads: DownloadManager | None = None, probe: HardwareProbe | None = None,
                 catalog: Catalog | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        root = settings.models_dir
        self.store = store or ModelStore(Path(root) if root else None)
        self.downloads = downloads or DownloadManager(self.store, self)
        self.probe = probe or HardwareProbe(parent=self)
        self.catalog = catalog or load_catalog()
        self.tasks: list[BackgroundTask] = []
        self._plans: dict[tuple[Any, ...], Plan] = {}  # fits are pure: cached per inputs
        self.probe.sig_finished.connect(self._on_probe_finished)
        self.downloads.sig_job_added.connect(self._on_downloads_job_added)

    # ----- machine and plans ---------------------------------------------------------------

    def machine(self) -> Machine:
        """The probed machine, or until the probe answers, RAM only (no GPU promised)."""
        machine = self.probe.machine()
        if machine is not None:
            return machine
        total, available = ram_bytes()
        return Machine(ram_available=available, ram_total=total)

    def installed_ids(self) -> set[str]:
        return {e.id for e in self.catalog.entries()
                if self.store.find(e.repo.repo_id, e.file.filename) is not None}

    def _installed_path(self, entry: Any) -> Path | None:
        found = self.store.find(entry.repo.repo_id, entry.file.filename)
        return Path(found.path) if found else None

    def candidates(self, official_only: bool = False) -> dict[str, Candidate]:
        return {c.model_id: c for c in catalog_candidates(
            self.catalog, headers=cached_shapes(), installed=self.installed_ids(),
            official_only=official_only)}

    def recommendation(self) -> Plan:
        """The planner's one pick among the official repositories (what the welcome screen offers)."""
        cands = self.candidates(official_only=True)
        machine = self.machine()
        speed, floor = self.probe.speed, float(self.settings.min_decode_tok_s)
        opts = Options(kv_type=str(self.settings.kv_cache_type))
        key = ("recommend", machine, tuple(sorted((k, c.installed) for k, c in cands.items())),
               speed, floor, opts)
        if key not in self._plans:  # with speeds: the strongest predicted to reach the floor
            self._plans[key] = recommend(cands.values(), machine, opts, speed=speed, floor=floor)
        return self._plans[key]

    def plan(self, entry_id: str, n_ctx: int | None = None,
             candidates: dict[str, Candidate] | None = None) -> Plan:
        """The fit of one entry at a context length (the memory it needs, its badge, GPU layers)."""
        cand = (candidates or self.candidates())[entry_id]
        machine = self.machine()
        ctx = n_ctx or self.context_length()
        key = ("fit", entry_id, ctx, machine, cand.installed)
        if key not in self._plans:
            self._plans[key] = fit(cand, machine, ctx)
        return self._plans[key]

    def context_length(self) -> int:
        value = self.settings.n_ctx
        return value if isinstance(value, int) and value > 0 else DEFAULT_N_CTX

    # ----- files ---------------------------------------------------------------------------

    def files(self, entry: Entry) -> list[FileSpec]:
        """Model + projector: images and voice need the projector, so it always comes along."""
        out = [(entry.repo.repo_id, entry.file.filename, entry.repo.revision)]
        if entry.mmproj is not None:
            out.append((entry.repo.repo_id, entry.mmproj.filename, entry.repo.revision))
        return out

    def download_bytes(self, entry: Entry) -> int:
        return entry.file.size + (entry.mmproj.size if entry.mmproj else 0)

    def installed_paths(self, entry: Entry) -> tuple[str, str | None] | None:
        """(model, projector or None) when the model file is installed."""
        model = self.store.find(entry.repo.repo_id, entry.file.filename)
        if model is None:
            return None
        proj = None
        if entry.mmproj is not None:
            found = self.store.find(entry.repo.repo_id, entry.mmproj.filename)
            proj = found.path if found else None
        return model.path, proj

    def unverified(self, entry: Entry) -> bool:
        """An installed file the Hub gave no sha256 for: its bytes could not be checked."""
        found = [self.store.find(r, f) for r, f, _ in self.files(entry)]
        return any(m is not None and not m.verified for m in found)

    def partial_bytes(self, entry: Entry) -> int:
        """Bytes of an interrupted download on disk (a download the app was closed during)."""
        return sum(self.store.partial_bytes(r, f) for r, f, _ in self.files(entry))

    def job(self, entry_id: str) -> DownloadJob | None:
        return self.downloads.job(entry_id)

    def download(self, entry_id: str) -> DownloadJob:
        """Start (or resume: partial files are reused) the download of model + projector."""
        if env_offline():
            from app.core.download import OfflineError

            raise OfflineError()
        entry = self.catalog.entry(entry_id)
        return self.downloads.download(entry_id, self.files(entry))

    def remove(self, entry_id: str) -> None:
        """Delete a model; its projector too unless another installed quant of the repo uses it."""
        entry = self.catalog.entry(entry_id)
        job = self.downloads.job(entry_id)
        if job is not None and job.is_running():
            raise RuntimeError("Cancel the download before deleting the model.")
        repo = entry.repo.repo_id
        self.store.remove(repo, entry.file.filename)
        others = [e for e in self.catalog.entries() if e.repo.repo_id == repo and e.id != entry.id
                  and self.store.find(repo, e.file.filename) is not None]
        if entry.mmproj is not None and not others:
            self.store.remove(repo, entry.mmproj.filename)
        self.sig_installed_changed.emit()

    def use(self, entry_id: str, n_ctx: int | None = None, plan: Plan | None = None) -> Plan:
        """Load an installed catalog model with the planner's context and GPU layers.

        `plan`: one already made for this entry (the welcome screen's recommendation, whose
        context may differ from the settings'); otherwise the fit at `n_ctx`.
        """
        entry = self.catalog.entry(entry_id)
        found = self.installed_paths(entry)
        if found is None:
            raise LookupError(f"{entry.label} is not installed: download it first.")
        if plan is None or plan.candidate is None or plan.candidate.model_id != entry_id:
            plan = self.plan(entry_id, n_ctx)
        layers = plan.n_gpu_layers if plan.fits else 0
        self.sig_use_requested.emit(found[0], found[1], plan.n_ctx, layers)
        return plan

    # ----- imported files ------------------------------------------------------------------

    def local_models(self) -> list[InstalledModel]:
        proj = set(self._pairs().values())
        return [m for m in self.store.installed()
                if m.repo_id == LOCAL_REPO and m.filename not in proj
                and not is_projector(m.filename)]

    def local_projector(self, model: InstalledModel) -> str | None:
        name = self._pairs().get(model.filename)
        found = self.store.find(LOCAL_REPO, name) if name else None
        return found.path if found else None

    def use_local(self, model: InstalledModel, n_ctx: int | None = None) -> None:
        layers = self.settings.n_gpu_layers
        self.sig_use_requested.emit(model.path, self.local_projector(model),
                                    n_ctx or self.context_length(),
                                    layers if isinstance(layers, int) else -1)

    def remove_local(self, model: InstalledModel) -> None:
        proj = self._pairs().get(model.filename)
        self.store.remove(LOCAL_REPO, model.filename)
        if proj:
            self.store.remove(LOCAL_REPO, proj)
            pairs = self._pairs()
            pairs.pop(model.filename, None)
            self._write_pairs(pairs)
        self.sig_installed_changed.emit()

    def import_task(self, source: Path) -> BackgroundTask:
        """Validate and copy a GGUF (and a matching mmproj beside it) into the store, off-thread."""
        from app.core.hardware.validate import ValidationError, validate_model, validate_projector

        def work(report: Callable[[int, int], None]) -> InstalledModel:
            info = validate_model(source)
            projector = None
            for cand in sorted(source.parent.glob("*.gguf")):
                if cand != source and is_projector(cand.name):
                    try:
                        validate_projector(info, cand)
                    except ValidationError:
                        continue
                    projector = cand
                    break
            extra = projector.stat().st_size if projector else 0
            total = source.stat().st_size + extra
            model = self.store.import_local(source, on_progress=lambda d, _t: report(d, total),
                                            cancel=task.cancel)
            if projector is not None:
                base = model.size
                proj = self.store.import_local(
                    projector, on_progress=lambda d, _t: report(base + d, total),
                    cancel=task.cancel)
                pairs = self._pairs()
                pairs[model.filename] = proj.filename
                self._write_pairs(pairs)
            return model

        task = BackgroundTask(f"import-{source.name}", work, self)
        self._track(task)
        task.sig_finished.connect(lambda _m: self.sig_installed_changed.emit())
        return task

    # ----- catalog -------------------------------------------------------------------------

    def refresh_task(self) -> BackgroundTask:
        """Re-list every repository on the Hub (sizes, sha256) and cache it for offline use."""
        def work(_report: Callable[[int, int], None]) -> Catalog:
            catalog = refresh_from_hub(self.store.list_remote_files)
            # Real headers (HTTP ranges, no weights) make the plans exact, and stay cached offline.
            refresh_shapes(catalog.entries(official_only=False), local_path=self._installed_path)
            return catalog

        task = BackgroundTask("catalog-refresh", work, self)
        self._track(task)
        task.sig_finished.connect(self._on_catalog_loaded)
        return task

    def refresh_if_stale(self) -> BackgroundTask | None:
        """Start a refresh when the Hub was last listed over a day ago (or never), unless offline:
        the shipped catalog's sizes are approximate and some file names come from public listings."""
        age = listing_age()
        if self.offline or (age is not None and age < LISTING_MAX_AGE_S):
            return None
        task = self.refresh_task()
        task.sig_failed.connect(lambda message: log.info("catalog refresh failed: %s", message))
        task.start()
        return task

    def add_repo_task(self, repo_id: str, variant_id: str) -> BackgroundTask:
        """List another repository's GGUFs on the Hub and add it to the catalog."""
        def work(_report: Callable[[int, int], None]) -> Catalog:
            listing = self.store.list_remote_files(repo_id)
            catalog = add_user_repo(variant_id, repo_id, listing)
            if not any(r.repo_id == repo_id and r.files for v in catalog.variants for r in v.repos):
                raise LookupError(f"{repo_id} has no GGUF model files. Check the repository id.")
            return catalog

        task = BackgroundTask(f"add-repo-{repo_id}", work, self)
        self._track(task)
        task.sig_finished.connect(self._on_catalog_loaded)
        return task

    # ----- offline -------------------------------------------------------------------------

    @property
    def offline(self) -> bool:
        return env_offline()

    def set_offline(self, offline: bool) -> None:
        """The offline switch: HF_HUB_OFFLINE is what every Hub call checks, at call time."""
        if offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
        else:
            os.environ.pop("HF_HUB_OFFLINE", None)
        self.settings.offline = offline
        self.sig_offline_changed.emit(offline)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Pause downloads (they resume next time) and wait for every worker thread."""
        self.downloads.shutdown(timeout)
        for task in list(self.tasks):
            task.cancel.set()
            task.wait(timeout)
        self.probe.wait(timeout)

    # ----- internals -----------------------------------------------------------------------

    def _track(self, task: BackgroundTask) -> None:
        self.tasks.append(task)
        task.sig_finished.connect(lambda _r: self._untrack(task))
        task.sig_failed.connect(lambda _m: self._untrack(task))

    def _untrack(self, task: BackgroundTask) -> None:
        if task in self.tasks:
            self.tasks.remove(task)

    def _pairs(self) -> dict[str, str]:
        try:
            data = json.loads((self.store.root / PAIRS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write_pairs(self, pairs: dict[str, str]) -> None:
        path = self.store.root / PAIRS_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(pairs, indent=1))
        os.replace(tmp, path)

    def _on_catalog_loaded(self, catalog: object) -> None:
        self.catalog = catalog if isinstance(catalog, Catalog) else load_catalog()
        self._plans.clear()  # sizes may have changed
        self.sig_catalog_changed.emit()

    def _on_probe_finished(self, _report: object) -> None:
        self.sig_machine_changed.emit()

    def _on_downloads_job_added(self, key: str) -> None:
        job = self.downloads.job(key)
        if job is not None:
            job.sig_finished.connect(lambda _p: self.sig_installed_changed.emit())
            job.sig_cancelled.connect(self.sig_installed_changed.emit)
