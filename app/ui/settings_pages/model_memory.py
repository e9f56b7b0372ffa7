"""What a model needs on this machine, in words: context labels, fit badge, memory estimate."""

from __future__ import annotations

from app.core.hardware.memory import Estimate, Options
from app.core.hardware.planner import BADGE_TEXT, NO_FIT, Candidate, Machine, fit
from app.ui.settings_pages.model_facts import ModelFacts

CONTEXT_CHOICES = (2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144)
GIB = 1024**3


def ctx_label(n: int) -> str:
    return f"{n // 1024}k tokens" if n % 1024 == 0 else f"{n:,} tokens"


def gb(n: int) -> str:
    return f"{n / GIB:.1f} GB" if n >= GIB / 10 else f"{n / 1024**2:.0f} MB"


def context_choices(max_context: int | None, wanted: int) -> list[int]:
    """The context lengths offered for a model that takes at most `max_context` tokens."""
    limit = max_context or CONTEXT_CHOICES[-1]
    choices = [c for c in CONTEXT_CHOICES if c <= limit] or [limit]
    if wanted not in choices and wanted <= limit:
        choices = sorted({*choices, wanted})
    return choices


def fit_badge(facts: ModelFacts, machine: Machine, ctx: int, options: Options) -> str:
    """How the model fits this machine at this context, as the list shows it."""
    if facts.shape is None:
        return "not a model"
    candidate = Candidate(model_id=facts.path, variant=facts.name, quant="", rank=1, moe=False,
                          shape=facts.shape, installed=True)
    plan = fit(candidate, machine, min(ctx, facts.max_context or ctx), options)
    return "does not fit" if plan.badge == NO_FIT else BADGE_TEXT[plan.badge]


def memory_text(est: Estimate, machine: Machine, layers: int) -> str:
    """The estimate in a sentence, with advice when it is more than the machine has free."""
    parts = [f"about {gb(est.total)} in all: the model {gb(est.gpu_weights + est.cpu_weights)}, "
             f"the context {gb(est.kv)}, work space {gb(est.gpu_compute + est.cpu_compute)}"]
    if machine.has_gpu:
        parts.append(f"{gb(est.gpu_total)} of it on the GPU "
                     f"({gb(machine.gpu_budget())} free to use)")
    else:
        parts.append(f"all in RAM ({gb(machine.ram_budget())} free to use)")
    over = (est.gpu_total > machine.gpu_budget() if machine.has_gpu and layers
            else False) or est.cpu_total > machine.ram_budget()
    text = "It will need " + "; ".join(parts) + "."
    if over and machine.ram_total:
        text += " That is more than this machine has free: choose a shorter context" + (
            " or fewer GPU layers." if machine.has_gpu else " or a smaller model.")
    return text
