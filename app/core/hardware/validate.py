"""Checks for importing a local GGUF: readable header, supported architecture, matching projector.

Every failure is a `ValidationError` whose message a user can act on.
"""

from __future__ import annotations

from pathlib import Path

from app.core.hardware.gguf_info import GGUFError, GGUFInfo, read_gguf_path
from app.core.hardware.gguf_tables import PROJECTOR_FAMILIES, SUPPORTED_ARCHITECTURES


class ValidationError(ValueError):
    """A model or projector file that the app must not load; the message says why and what to do."""


def read_checked(path: str | Path) -> GGUFInfo:
    """Read a GGUF header, turning I/O and format problems into a plain ValidationError."""
    p = Path(path)
    if not p.is_file():
        raise ValidationError(f"{p.name}: the file does not exist. Pick an existing .gguf file.")
    try:
        info = read_gguf_path(p)
    except GGUFError as exc:
        raise ValidationError(f"{p.name}: {exc} Pick a complete .gguf model file.") from exc
    except OSError as exc:
        raise ValidationError(f"{p.name}: the file cannot be read ({exc.strerror}).") from exc
    expected = info.header_bytes + info.total_tensor_bytes
    size = p.stat().st_size
    if size < expected:
        raise ValidationError(
            f"{p.name}: the file is truncated ({size:,} of {expected:,} bytes). "
            "Download it again."
        )
    return info


def validate_model(path: str | Path) -> GGUFInfo:
    """A text model the bundled llama.cpp can load; returns its header."""
    info = read_checked(path)
    name = Path(path).name
    if info.is_projector:
        raise ValidationError(
            f"{name} is a vision/audio projector (mmproj), not a model. "
            "Import the model GGUF and add this file as its projector."
        )
    arch = info.architecture
    if not arch:
        raise ValidationError(f"{name} does not name its architecture; it cannot be loaded.")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValidationError(
            f"{name} is a '{arch}' model, which the installed llama.cpp cannot run. "
            "Pick a Gemma or another supported model."
        )
    if info.block_count <= 0 or not info.tensors:
        raise ValidationError(f"{name} has no layers or no tensors: the file is damaged.")
    return info


def validate_projector(model: GGUFInfo, path: str | Path) -> GGUFInfo:
    """A projector (mmproj) that belongs to this model's family and width; returns its header."""
    info = read_checked(path)
    name = Path(path).name
    if not info.is_projector:
        raise ValidationError(
            f"{name} is not a projector (mmproj) file; it is a '{info.architecture}' model."
        )
    family = PROJECTOR_FAMILIES.get(model.architecture)
    kinds = info.projector_types
    if family is not None and kinds and not kinds & family:
        raise ValidationError(
            f"{name} is a '{', '.join(sorted(kinds))}' projector, which does not fit a "
            f"'{model.architecture}' model. Use the mmproj file from the model's own repository."
        )
    width = model.embedding_length
    if width and info.projector_dims and width not in info.projector_dims:
        dims = ", ".join(str(d) for d in sorted(info.projector_dims))
        raise ValidationError(
            f"{name} outputs width {dims} but the model expects {width}: it belongs to another "
            "size of the model. Use the mmproj file from the same repository as the model."
        )
    return info
