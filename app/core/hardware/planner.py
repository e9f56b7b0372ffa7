"""The fit planner: which Gemma 4 variant, quant, context and GPU layers this machine runs well.

Pure code: a `Machine` (free memory per place) and model shapes in, a `Plan` out. The rules,
strongest variant first:

- plan against FREE memory, minus a margin: on a GPU 5% of its size plus 600 MiB for the engine's
  own driver context; in RAM 10% plus 1 GiB for the app, the engine process and the OS' needs;
- with a GPU, the dense 31B must fit entirely on it (a big dense model split with the CPU runs
  at CPU speed); E2B/E4B may be split, as they run on a CPU alone; the MoE 26B-A4B may leave layers on the CPU, because only 4 B of its
  weights work per token, but at least half of its layers must be on the GPU;
- without a usable GPU only E2B/E4B are offered (the CPU runs them at a usable speed and they
  are the sizes with audio input);
- context: the largest of 32k/16k/8k that fits entirely on the GPU; a partly offloaded model
  gets 8k, so the most layers stay on the GPU; on the CPU 32k if RAM allows;
- quant: the best that fits (Q8_0 before Q6_K before ... Q4_K_M); a stronger variant at Q4_K_M
  beats a weaker one at Q8_0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from app.core.hardware.devices import HardwareReport
from app.core.hardware.memory import MIB, Estimate, ModelShape, Options, estimate
from app.core.hardware.speed import MachineSpeed, predict

GIB = 1024**3
CONTEXTS = (32768, 16384, 8192)
MIN_CONTEXT = 4096
DEFAULT_FLOOR = 8.0  # tok/s: about reading speed
GPU_RESERVE = 600 * MIB
RAM_RESERVE = 1 * GIB

FULL_GPU, PARTIAL, CPU_ONLY, NO_FIT = "full_gpu", "partial", "cpu_only", "does_not_fit"
BADGE_TEXT = {FULL_GPU: "fully on GPU", PARTIAL: "partly offloaded", CPU_ONLY: "CPU only",
              NO_FIT: "does not fit"}


@dataclass(frozen=True)
class Machine:
    """Free memory the planner may use. `unified`: the GPU shares RAM (Apple Silicon)."""

    gpu_free: int = 0
    gpu_total: int = 0
    gpu_name: str = ""
    ram_available: int = 0
    ram_total: int = 0
    disk_free: int | None = None
    unified: bool = False
    gpu_max_tensor: int = 0  # the GPU's largest usable tensor (Vulkan's storage range); 0: no limit

    @property
    def has_gpu(self) -> bool:
        return self.gpu_free > 0

    def gpu_budget(self) -> int:
        return max(0, self.gpu_free - int(0.05 * self.gpu_total) - GPU_RESERVE)

    def ram_budget(self) -> int:
        return max(0, self.ram_available - int(0.10 * self.ram_total) - RAM_RESERVE)

    @classmethod
    def hypothetical(cls, vram_gib: float = 0, ram_gib: float = 16, disk_gib: float | None = None,
                     unified: bool = False) -> Machine:
        """A machine described by sizes (CLI `--vram-gib`, tests), all of it free."""
        ram = int(ram_gib * GIB)
        if unified:
            # Metal lets one process wire about 3/4 of unified memory for the GPU.
            vram = int(ram * 0.75)
            return cls(vram, vram, "Apple GPU", ram, ram, None if disk_gib is None
                       else int(disk_gib * GIB), True)
        vram = int(vram_gib * GIB)
        return cls(vram, vram, "GPU" if vram else "", ram, ram,
                   None if disk_gib is None else int(disk_gib * GIB), False)


@dataclass(frozen=True)
class Candidate:
    """A model the planner may pick: catalog id, variant facts and its memory shape."""

    model_id: str
    variant: str
    quant: str
    rank: int
    moe: bool
    shape: ModelShape
    installed: bool = False
    download_bytes: int = 0


@dataclass(frozen=True)
class Plan:
    """A choice with its estimate, badge and one-sentence reason; also the engine's flags."""

    candidate: Candidate | None
    n_ctx: int
    gpu_layers: int
    badge: str
    explanation: str
    estimate: Estimate | None = None
    options: Options = field(default_factory=Options)
    predicted_decode_tok_s: float | None = None
    alternatives: tuple[Plan, ...] = ()  # what a speed-aware recommendation weighed
    n_cpu_moe: int = 0  # MoE: layers whose expert tensors stay in RAM (the engine's override)

    @property
    def n_gpu_layers(self) -> int:
        """The value to pass to llama_cpp.Llama(n_gpu_layers=...) (-1 = everything)."""
        if self.candidate is None:
            return 0
        return -1 if self.gpu_layers > self.candidate.shape.n_layer else self.gpu_layers

    @property
    def fits(self) -> bool:
        return self.badge != NO_FIT


def fits_machine(est: Estimate, m: Machine) -> bool:
    """Does this estimate fit the machine's free memory (margins included)?"""
    return _fits(est, m)


def _fits(est: Estimate, m: Machine) -> bool:
    if m.unified:
        # One pool: everything counts against RAM, and the GPU share against Metal's limit.
        return est.gpu_total <= m.gpu_budget() and est.total <= m.ram_budget()
    return est.gpu_total <= m.gpu_budget() and est.cpu_total <= m.ram_budget()


def max_gpu_layers(shape: ModelShape, n_ctx: int, m: Machine, opts: Options) -> int | None:
    """The most layers (0..n_layer+1) that fit at this context, or None if nothing fits."""
    if not m.has_gpu:
        return 0 if _fits(estimate(shape, n_ctx, 0, opts, has_gpu=False), m) else None
    for g in range(shape.n_layer + 1, -1, -1):
        if _fits(estimate(shape, n_ctx, g, opts, gpu_max_tensor=m.gpu_max_tensor), m):
            return g
    return None


def badge_for(shape: ModelShape, gpu_layers: int) -> str:
    if gpu_layers > shape.n_layer:
        return FULL_GPU
    return PARTIAL if gpu_layers > 0 else CPU_ONLY


def _ctx_label(n_ctx: int) -> str:
    return f"{n_ctx // 1024}k" if n_ctx % 1024 == 0 else f"{n_ctx:,}"


def describe(c: Candidate, n_ctx: int, gpu_layers: int, reason: str) -> str:
    n = c.shape.n_layer
    if gpu_layers > n:
        where = f"all {n} layers on the GPU"
    elif gpu_layers > 0:
        where = f"{max(gpu_layers - 1, 0)} of {n} layers on the GPU"
    else:
        where = "on the CPU"
    return f"{c.variant} {c.quant}, {_ctx_label(n_ctx)} context, {where}: {reason}"


def fit(c: Candidate, m: Machine, n_ctx: int | None = None, opts: Options | None = None) -> Plan:
    """Badge and best layer split of one candidate (for the model manager's list)."""
    opts = opts or Options()
    ctx = n_ctx or CONTEXTS[-1]
    if m.disk_free is not None and not c.installed and c.download_bytes > m.disk_free:
        return Plan(c, ctx, 0, NO_FIT, f"{c.variant} {c.quant} needs "
                    f"{c.download_bytes / GIB:.1f} GB of disk; free some space first.", None, opts)
    g = max_gpu_layers(c.shape, ctx, m, opts)
    if g is None:
        est = estimate(c.shape, ctx, c.shape.n_layer + 1 if m.has_gpu else 0, opts, m.has_gpu,
                       gpu_max_tensor=m.gpu_max_tensor)
        return Plan(c, ctx, 0, NO_FIT, f"{c.variant} {c.quant} needs about "
                    f"{est.total / GIB:.1f} GB at {_ctx_label(ctx)} context; this machine has "
                    "less free memory.", est, opts)
    est = estimate(c.shape, ctx, g, opts, m.has_gpu, gpu_max_tensor=m.gpu_max_tensor)
    badge = badge_for(c.shape, g) if m.has_gpu else CPU_ONLY
    return Plan(c, ctx, g, badge, describe(c, ctx, g, BADGE_TEXT[badge]), est, opts)


def _try(c: Candidate, m: Machine, opts: Options, want_full: bool) -> Plan | None:
    if m.disk_free is not None and not c.installed and c.download_bytes > m.disk_free:
        return None
    ctx_max = c.shape.max_context or CONTEXTS[0]
    for ctx in [x for x in CONTEXTS if x <= ctx_max]:
        g = max_gpu_layers(c.shape, ctx, m, opts)
        if g is None or not _acceptable(c, g, m):
            continue
        full = g > c.shape.n_layer
        if m.has_gpu and full != want_full:
            continue
        if m.has_gpu and not full:
            ctx = CONTEXTS[-1]  # partial offload: the smallest context keeps most layers
            g = max_gpu_layers(c.shape, ctx, m, opts) or g
        est = estimate(c.shape, ctx, g, opts, m.has_gpu, gpu_max_tensor=m.gpu_max_tensor)
        reason = "the strongest model that fits"
        if not m.has_gpu:
            reason = "the strongest model that runs well without a GPU"
        badge = badge_for(c.shape, g) if m.has_gpu else CPU_ONLY
        return Plan(c, ctx, g, badge, describe(c, ctx, g, reason), est, opts)
    return None


def _acceptable(c: Candidate, g: int, m: Machine) -> bool:
    n = c.shape.n_layer
    if not m.has_gpu:
        return c.rank <= 2  # E2B/E4B only on the CPU
    if g > n or c.rank <= 2:
        return True  # E2B/E4B run acceptably even split with the CPU
    return c.moe and (g - 1) * 2 >= n


def recommend(candidates: Iterable[Candidate], m: Machine, opts: Options | None = None,
              speed: MachineSpeed | None = None, floor: float = DEFAULT_FLOOR) -> Plan:
    """The strongest candidate that runs well on this machine, with the reason in one sentence.

    With `speed` (this machine's measured figures) the pick is the strongest model and quant
    whose predicted decode speed meets `floor` tok/s (see `recommend_by_speed`).
    """
    opts = opts or Options()
    if speed is not None:
        return recommend_by_speed(list(candidates), m, speed, opts, floor)
    candidates = list(candidates)
    ranks = sorted({c.rank for c in candidates}, reverse=True)
    for rank in ranks:
        group = sorted((c for c in candidates if c.rank == rank),
                       key=lambda c: (_quant_key(c.quant), not c.installed))
        # All on the GPU at any quant beats a better quant split with the CPU.
        for want_full in ((True, False) if m.has_gpu else (False,)):
            plans = [p for c in group if (p := _try(c, m, opts, want_full)) is not None]
            if not plans:
                continue
            if want_full or not m.has_gpu:
                return plans[0]  # the best quant that fits
            # Split with the CPU: the share of layers on the GPU decides the speed, so a smaller
            # quant that keeps clearly more layers there wins over a better quant.
            return max(plans, key=lambda p: (round(p.gpu_layers / (p.candidate.shape.n_layer + 1)
                                                   * 10) if p.candidate else 0,
                                             -_quant_key(p.candidate.quant if p.candidate else "")))
    # Last resort: the smallest model at a short context, wherever it fits.
    for c in sorted(candidates, key=lambda c: (c.rank, _quant_key(c.quant))):
        g = max_gpu_layers(c.shape, MIN_CONTEXT, m, opts)
        if g is not None:
            est = estimate(c.shape, MIN_CONTEXT, g, opts, m.has_gpu, gpu_max_tensor=m.gpu_max_tensor)
            badge = badge_for(c.shape, g) if m.has_gpu else CPU_ONLY
            return Plan(c, MIN_CONTEXT, g, badge, describe(
                c, MIN_CONTEXT, g, "the only choice that fits; expect it to be slow"), est, opts)
    return Plan(None, 0, 0, NO_FIT, "No Gemma 4 model fits this machine's free memory: close "
                "other programs or free disk space, then try again.", None, opts)


def _best_placement(c: Candidate, m: Machine, opts: Options) -> Plan | None:
    for want_full in ((True, False) if m.has_gpu else (False,)):
        if (p := _try(c, m, opts, want_full)) is not None:
            return _expert_placement(c, m, opts) or p if c.moe and not want_full else p
    return None


def _expert_placement(c: Candidate, m: Machine, opts: Options) -> Plan | None:
    """MoE that does not fit whole: every layer on the GPU but the first K layers' experts."""
    from app.core.hardware.moe import choose_cpu_moe

    ctx = CONTEXTS[-1]
    k = choose_cpu_moe(c.shape, ctx, m.gpu_budget(), opts, m.gpu_max_tensor)
    if not k:
        return None
    g = c.shape.n_layer + 1
    est = estimate(c.shape, ctx, g, opts, expert_cpu_layers=k, gpu_max_tensor=m.gpu_max_tensor)
    if not _fits(est, m):
        return None
    why = f"all layers on the GPU but the experts of {k} of {c.shape.n_layer} layers in RAM"
    return Plan(c, ctx, g, PARTIAL, f"{c.variant} {c.quant}, {_ctx_label(ctx)} context, {why}",
                est, opts, n_cpu_moe=k)


def _tok_s(x: float) -> str:
    return f"≈ {x:.0f} tok/s" if x >= 2 else f"≈ {x:.1f} tok/s"


def recommend_by_speed(candidates: list[Candidate], m: Machine, speed: MachineSpeed,
                       opts: Options, floor: float = DEFAULT_FLOOR) -> Plan:
    """The strongest model+quant predicted to decode at `floor` tok/s or more; else the fastest.

    Every candidate's best placement is predicted; the pick carries them as `alternatives`.
    More memory only adds GPU layers (faster) or candidates, so it never gives a weaker pick.
    """
    weighed: list[Plan] = []
    for c in candidates:
        p = _best_placement(c, m, opts)
        if p is not None and p.estimate is not None:
            tok_s = predict(c.shape, speed, p.estimate.n_ctx, p.estimate.gpu_layers,
                            kv_type=opts.kv_type, expert_cpu_layers=p.n_cpu_moe,
                            output_on_gpu=p.estimate.output_on_gpu).decode_tok_s
            weighed.append(replace(p, predicted_decode_tok_s=tok_s))
    if not weighed:
        return recommend(candidates, m, opts)  # the last-resort rules and their wording

    def tok(p: Plan) -> float:
        return p.predicted_decode_tok_s or 0.0

    def strength(p: Plan) -> tuple[int, int, bool]:
        c = p.candidate
        assert c is not None
        return (c.rank, -_quant_key(c.quant), c.installed)

    fast = [p for p in weighed if tok(p) >= floor]
    if fast:
        pick = max(fast, key=strength)
        assert pick.candidate is not None
        slower = [p for p in weighed if p.candidate is not None and tok(p) < floor
                  and strength(p) > strength(pick)]
        why = f"{pick.candidate.variant} {pick.candidate.quant}: {_tok_s(tok(pick))} here"
        if slower:
            nxt = min(slower, key=strength)
            assert nxt.candidate is not None
            name = (nxt.candidate.quant if nxt.candidate.variant == pick.candidate.variant
                    else f"{nxt.candidate.variant} {nxt.candidate.quant}")
            why += f"; {name} would be {_tok_s(tok(nxt))}"
    else:
        pick = max(weighed, key=lambda p: (tok(p), strength(p)))
        assert pick.candidate is not None
        why = (f"{pick.candidate.variant} {pick.candidate.quant}: {_tok_s(tok(pick))} here, the "
               f"fastest that fits; it will be slow on this machine (below {floor:.0f} tok/s)")
    others = tuple(replace(p, explanation=(
        f"{p.candidate.variant} {p.candidate.quant}: {_tok_s(tok(p))} here, "
        f"{'meets' if tok(p) >= floor else 'below'} the {floor:.0f} tok/s floor"))
        for p in weighed if p is not pick and p.candidate is not None)
    assert pick.candidate is not None
    where = (pick.explanation.split(", ", 1)[1] if pick.n_cpu_moe else
             describe(pick.candidate, pick.n_ctx, pick.gpu_layers, "").split(", ", 1)[1][:-2])
    return replace(pick, explanation=f"{why} ({where})", alternatives=others)


def _quant_key(quant: str) -> int:
    from app.core.catalog.catalog import quant_rank

    return quant_rank(quant)


def catalog_candidates(
    catalog: object,
    headers: dict[str, ModelShape] | None = None,
    installed: Iterable[str] = (),
    official_only: bool = True,
) -> list[Candidate]:
    """One candidate per catalog entry; `headers` maps entry ids to shapes read from real headers
    (local or remote), the others use the catalog's approximate hyper-parameters."""
    from app.core.catalog.catalog import QUANT_BITS, Catalog

    assert isinstance(catalog, Catalog)
    headers = headers or {}
    have = set(installed)
    out = []
    for e in catalog.entries(official_only=official_only):
        mm = e.mmproj
        mm_bytes = mm.size if mm else 0
        shape = headers.get(e.id) or ModelShape.from_hparams(
            e.label, e.variant.hparams, QUANT_BITS.get(e.quant.removeprefix("UD-"), 5.0),
            e.file.size, mm_bytes, e.variant.max_context, e.quant,
        )
        out.append(Candidate(
            model_id=e.id, variant=e.variant.id, quant=e.quant, rank=e.variant.rank,
            moe=e.variant.moe, shape=shape, installed=e.id in have,
            download_bytes=e.file.size + mm_bytes,
        ))
    return out


def machine_from_report(report: HardwareReport) -> Machine:
    """What the planner may use on this machine: the GPU with the most free memory, RAM, disk.

    A GPU the installed llama.cpp build cannot offload to does not count (it would only mislead
    the planner into promising GPU speed); the report's warning says so to the user.
    """
    gpus = report.gpus
    best = max(gpus, key=lambda d: d.free_bytes) if gpus and report.gpu_offload else None
    unified = best is not None and (best.kind == "igpu" or "Metal" in best.name)
    return Machine(
        gpu_free=best.free_bytes if best else 0,
        gpu_total=best.total_bytes if best else 0,
        gpu_name=best.description if best else "",
        ram_available=report.ram_available,
        ram_total=report.ram_total,
        disk_free=report.disk_free,
        unified=unified,
        gpu_max_tensor=best.max_tensor_bytes if best else 0,
    )
