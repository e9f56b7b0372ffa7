"""How lengths of time are written: one home for the clock and the spoken form."""

from __future__ import annotations


def clock(seconds: float) -> str:
    """'0:07', '1:05': a clip's length on its chip."""
    whole = max(0, int(round(seconds)))
    return f"{whole // 60}:{whole % 60:02d}"


def spoken(seconds: float) -> str:
    """'3 s', '1 min 5 s', '2 min': whole seconds, never '0 s' once something took time."""
    whole = max(1, int(round(seconds)))
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"
