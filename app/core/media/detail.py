"""Gemma 4 image token budgets and the image size each allows (no imaging libraries needed)."""

from __future__ import annotations

import math

# Gemma 4 vision: 16 px patches pooled 3x3 -> one token per 48x48 px.
TOKEN_SIDE_PX = 48
IMAGE_TOKEN_BUDGETS: tuple[int, ...] = (70, 140, 280, 560, 1120)
DEFAULT_IMAGE_BUDGET = 280


def max_side_for_budget(budget: int) -> int:
    """Longest image side (px) that stays within a Gemma 4 image token budget, even for a square."""
    if budget not in IMAGE_TOKEN_BUDGETS:
        raise ValueError(f"image token budget must be one of {IMAGE_TOKEN_BUDGETS}, got {budget}")
    return math.isqrt(budget) * TOKEN_SIDE_PX


def estimate_image_tokens(width: int, height: int) -> int:
    """Rough number of Gemma 4 image tokens for an image of this size (before llama.cpp's clamp)."""
    tokens = math.ceil(width / TOKEN_SIDE_PX) * math.ceil(height / TOKEN_SIDE_PX)
    return max(IMAGE_TOKEN_BUDGETS[0], min(IMAGE_TOKEN_BUDGETS[-1], tokens))
