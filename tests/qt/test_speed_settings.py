"""The KV cache type and speed floor settings on the Model page: loaded, stored, and used."""

from __future__ import annotations

from pathlib import Path

from app.core.hardware.planner import Machine
from app.core.storage.settings import Settings
from app.ui.settings_pages.model_page import ModelPage


def test_kv_type_and_floor_round_trip_and_q8_shrinks_the_memory_estimate(qtbot, model_270m: Path):
    page = ModelPage(Machine.hypothetical(ram_gib=16), [(str(model_270m), None)])
    qtbot.addWidget(page)
    settings = Settings(model_path=str(model_270m), n_ctx=32768, kv_cache_type="q8_0",
                        min_decode_tok_s=12.0)
    page.load(settings)
    assert page.kv_combo.currentData() == "q8_0" and page.floor_spin.value() == 12
    qtbot.waitUntil(lambda: "the context" in page.memory_label.text(), timeout=30_000)
    q8 = page.memory_label.text()
    page.kv_combo.setCurrentIndex(page.kv_combo.findData("f16"))
    f16 = page.memory_label.text()
    assert q8 != f16  # the context's share changed with the cache type
    page.floor_spin.setValue(5)
    out = Settings()
    page.store(out)
    assert out.kv_cache_type == "f16" and out.min_decode_tok_s == 5.0
    page.shutdown()
