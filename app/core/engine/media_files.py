"""Find the projector (mmproj) that belongs to a model file."""

from __future__ import annotations

from pathlib import Path


def find_projector(model_path: str | Path) -> Path | None:
    """The mmproj-*.gguf beside the model, preferring one whose name shares the model's stem."""
    model = Path(model_path)
    candidates = sorted(model.parent.glob("mmproj*.gguf"))
    if not candidates:
        return None
    stem = model.stem.lower()
    for quant_sep in ("-q", "-f16", "-bf16", "-iq"):
        if quant_sep in stem:
            stem = stem[: stem.rindex(quant_sep)]
            break
    for c in candidates:
        if stem and stem in c.stem.lower():
            return c
    return candidates[0] if len(candidates) == 1 else None
