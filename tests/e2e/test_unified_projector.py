"""Gemma 4 12B "Unified": its projector (`gemma4uv` vision, `gemma4ua` audio) takes an image
and a clip through libmtmd into the model, with a synthetic 12B-style projector on the
synthetic Gemma 4 (the unified embedders have no towers, so the text model's shape suffices)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from app.core.catalog import builtin_catalog
from app.core.engine.llama_engine import LlamaEngine
from app.core.engine.media_inputs import MediaInput
from tests.e2e.test_mtmd_media import kinds, media_of, picture, prompt_for, run, tone
from tests.fixtures.gemma4 import UA_FRAME, synthetic_gemma4, synthetic_gemma4_unified_mmproj

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def unified() -> Iterator[LlamaEngine]:
    eng = LlamaEngine()
    eng.load(str(synthetic_gemma4()["model"]), n_ctx=2048, n_gpu_layers=0, n_threads=1,
             mmproj=str(synthetic_gemma4_unified_mmproj()))
    yield eng
    eng.close()


def test_catalog_lists_12b_with_the_unified_projector_types() -> None:
    twelve = builtin_catalog().variant("12B")
    assert twelve.projector_types == ("gemma4uv", "gemma4ua")
    assert {"image", "audio"} <= set(twelve.inputs) and twelve.repos[0].mmproj


def test_image_and_clip_through_the_unified_projector(unified: LlamaEngine) -> None:
    info = unified.info
    assert info is not None and info.supports_vision and info.supports_audio
    media = media_of(unified)
    prompt = prompt_for(unified, [{"type": "image"}, {"type": "audio"},
                                  {"type": "text", "text": "Both?"}])
    clip = tone(1.0, 300.0, media.audio_sample_rate)
    items: list[MediaInput] = [picture(96, 96, 5), clip]
    chunks = media.tokenize(prompt, items)
    assert kinds(chunks) == ["text", "image", "text", "audio", "text"]
    # gemma4ua: one token per 640 raw samples (40 ms at 16 kHz), no encoder downsampling.
    audio = next(c for c in chunks if c.kind == "audio")
    assert audio.n_tokens == -(-media.audio_sample_rate // UA_FRAME)
    both = run(unified, prompt, items)
    assert both.stats.completion_tokens >= 1
    # Both inputs count: another picture, or another clip, changes what the model sees.
    other_image = run(unified, prompt, [picture(96, 96, 40), clip])
    other_clip = run(unified, prompt, [items[0], tone(1.0, 900.0, media.audio_sample_rate)])
    assert not np.allclose(both.logits, other_image.logits)
    assert not np.allclose(both.logits, other_clip.logits)
