"""SettingsDialog: every setting changed in the dialog is saved, read back and announced; Cancel
restores; broken settings files come with a notice; fit badges and memory labels follow the
real GGUF headers; keyboard access."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QKeySequenceEdit,
    QLineEdit,
    QPlainTextEdit,
    QRadioButton,
    QWidget,
)

from app.core.hardware.planner import Machine
from app.core.storage.settings import Settings, default_path, load_settings
from app.ui.settings_dialog import SettingsDialog
from tests.fixtures.pulse import pulse  # noqa: F401 - the fixture

# Qt Multimedia finds PulseAudio only if it runs before the Voice page first asks for devices.
pytestmark = pytest.mark.usefixtures("pulse")
GIB = 1024**3


def _dialog(qtbot, settings: Settings | None = None, **kw) -> SettingsDialog:
    kw.setdefault("machine", Machine.hypothetical(vram_gib=8, ram_gib=16))
    dialog = SettingsDialog(settings or Settings(), **kw)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _wait_facts(qtbot, dialog: SettingsDialog, path: Path) -> None:
    qtbot.waitUntil(lambda: dialog.model_page._facts.get(str(path)) is not None, timeout=30_000)


def _apply(qtbot, dialog: SettingsDialog) -> Settings:
    with qtbot.waitSignal(dialog.sig_applied, timeout=10_000) as applied:
        qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    return applied.args[0]


def _sampling_gguf(path: Path) -> Path:
    """A small real GGUF whose header recommends its own sampling values."""
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_name("Sampling Test")
    w.add_block_count(1)
    w.add_context_length(4096)
    w.add_embedding_length(8)
    w.add_float32("general.sampling.temp", 0.7)
    w.add_float32("general.sampling.top_p", 0.8)
    w.add_int32("general.sampling.top_k", 20)
    w.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_every_setting_is_saved_read_back_and_announced(qtbot, model_270m, tmp_path):
    dialog = _dialog(qtbot)
    model = dialog.model_page
    model.add_model(str(model_270m))
    _wait_facts(qtbot, dialog, model_270m)
    model.ctx_combo.setCurrentIndex(model.ctx_combo.findData(16384))
    model.gpu_auto.setChecked(False)
    model.gpu_layers.setValue(7)
    model.thinking.setChecked(False)
    gen = dialog.generation_page
    gen.system_prompt.setPlainText("Answer like a pirate.")
    gen.temperature.setValue(0.55)
    gen.top_p.setValue(0.85)
    gen.top_k.setValue(33)
    gen.min_p.setValue(0.07)
    gen.repeat_penalty.setValue(1.12)
    gen.max_tokens.setValue(1234)
    dialog.voice_page.shortcut.setKeySequence(QKeySequence("Ctrl+Shift+M"))
    dialog.appearance_page.theme_buttons["dark"].setChecked(True)
    dialog.appearance_page.text_size.setCurrentIndex(dialog.appearance_page.text_size.findData(1.2))
    dialog.appearance_page.ctrl_enter.setChecked(True)

    applied = _apply(qtbot, dialog)

    expected = {
        "model_path": str(model_270m), "n_ctx": 16384, "n_gpu_layers": 7,
        "enable_thinking": False, "system_prompt": "Answer like a pirate.",
        "temperature": 0.55, "top_p": 0.85, "top_k": 33, "min_p": 0.07, "repeat_penalty": 1.12,
        "preset": "Custom", "max_tokens": 1234, "push_to_talk_shortcut": "Ctrl+Shift+M",
        "theme": "dark", "text_scale": 1.2, "send_with_ctrl_enter": True,
    }
    loaded, notice = load_settings()
    assert notice is None
    for name, value in expected.items():
        assert getattr(applied, name) == value, name
        assert getattr(loaded, name) == value, name
    assert loaded.recent_models[0] == str(model_270m)
    assert dialog.settings == loaded
    assert json.loads(default_path().read_text())["schema_version"] == loaded.schema_version


def test_cancel_restores_and_writes_nothing(qtbot):
    original = Settings(system_prompt="Be brief.", temperature=0.4, preset="Custom", theme="light")
    dialog = _dialog(qtbot, original)
    dialog.generation_page.system_prompt.setPlainText("Changed")
    dialog.generation_page.temperature.setValue(1.9)
    dialog.appearance_page.theme_buttons["dark"].setChecked(True)
    dialog.model_page.thinking.setChecked(False)
    emitted: list[Settings] = []
    dialog.sig_applied.connect(emitted.append)

    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)

    assert not dialog.isVisible()
    assert emitted == []
    assert not default_path().exists()
    assert dialog.settings == original
    assert original.system_prompt == "Be brief." and original.theme == "light"
    # Reopened, the controls show what was there, not the abandoned edits.
    dialog.show()
    assert dialog.generation_page.system_prompt.toPlainText() == "Be brief."
    assert dialog.generation_page.temperature.value() == pytest.approx(0.4)
    assert dialog.appearance_page.theme_buttons["light"].isChecked()
    assert dialog.model_page.thinking.isChecked()
    assert dialog.edited() == original


def test_apply_does_not_touch_the_callers_settings_object(qtbot):
    original = Settings()
    dialog = _dialog(qtbot, original)
    dialog.generation_page.top_k.setValue(5)
    applied = _apply(qtbot, dialog)
    assert applied.top_k == 5 and original.top_k == 64


@pytest.mark.parametrize("content, words", [
    ("{ not json", "could not be read"),
    (json.dumps({"schema_version": 99, "theme": "dark"}), "newer version"),
])
def test_broken_settings_file_is_backed_up_and_the_dialog_says_so(qtbot, content, words):
    path = default_path()
    path.write_text(content)
    settings, notice = load_settings()
    assert notice and words in notice
    backups = list(path.parent.glob("settings.json.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == content
    dialog = _dialog(qtbot, settings, notice=notice)
    assert dialog.notice.isVisible() and words in dialog.notice.text()
    assert dialog.appearance_page.theme_buttons["system"].isChecked()  # defaults in use
    _apply(qtbot, dialog)
    again, notice = load_settings()
    assert notice is None and again == settings


def test_presets_custom_and_the_models_own_defaults(qtbot, tmp_path):
    dialog = _dialog(qtbot)
    gen = dialog.generation_page
    gen.preset.setCurrentIndex(gen.preset.findData("Precise"))
    assert gen.values() == {"temperature": 0.3, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
                            "repeat_penalty": 1.05}
    gen.temperature.setValue(0.35)
    assert gen.preset.currentData() == "Custom"
    # No model selected: Gemma's recommended values, which are the Balanced preset.
    qtbot.mouseClick(gen.reset_button, Qt.MouseButton.LeftButton)
    assert gen.values()["temperature"] == 1.0 and gen.values()["top_k"] == 64
    assert gen.preset.currentData() == "Balanced"
    assert "names no defaults" in gen.defaults_note.text()
    # A model whose GGUF carries general.sampling.*: its values win.
    model = _sampling_gguf(tmp_path / "sampling.gguf")
    dialog.model_page.add_model(str(model))
    _wait_facts(qtbot, dialog, model)
    assert "Sampling Test recommends temperature 0.7" in gen.defaults_note.text()
    qtbot.mouseClick(gen.reset_button, Qt.MouseButton.LeftButton)
    assert gen.values() == {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0,
                            "repeat_penalty": 1.0}
    assert _apply(qtbot, dialog).temperature == 0.7


def _item_text(dialog: SettingsDialog) -> str:
    return dialog.model_page.model_list.currentItem().text()


@pytest.mark.parametrize("machine, badge", [
    (Machine.hypothetical(vram_gib=8, ram_gib=16), "fully on GPU"),
    (Machine.hypothetical(vram_gib=0, ram_gib=16), "CPU only"),
    (Machine.hypothetical(vram_gib=0, ram_gib=1.5), "does not fit"),
])
def test_fit_badge_of_an_installed_model(qtbot, model_270m, machine, badge):
    dialog = _dialog(qtbot, Settings(model_path=str(model_270m)), machine=machine)
    _wait_facts(qtbot, dialog, model_270m)
    assert badge in _item_text(dialog)
    assert "in use" in _item_text(dialog)


def test_memory_label_follows_context_and_gpu_layers(qtbot, model_270m):
    dialog = _dialog(qtbot, Settings(model_path=str(model_270m)))
    _wait_facts(qtbot, dialog, model_270m)
    page = dialog.model_page
    # The 270M model was trained for 32k: longer contexts are not offered.
    offered = [page.ctx_combo.itemData(i) for i in range(page.ctx_combo.count())]
    assert max(offered) == 32768
    page.ctx_combo.setCurrentIndex(page.ctx_combo.findData(2048))
    short = page.memory_label.text()
    page.ctx_combo.setCurrentIndex(page.ctx_combo.findData(32768))
    long = page.memory_label.text()
    assert short != long and "the context" in long
    assert page.gpu_layers.value() == page.selected_facts().n_layer + 1  # auto: everything fits
    assert page.gpu_layers.isReadOnly()  # automatic: shown, not editable
    page.gpu_auto.setChecked(False)
    assert not page.gpu_layers.isReadOnly()
    page.gpu_layers.setValue(0)
    assert "0.0 GB of it on the GPU" in page.memory_label.text() or "MB of it on the GPU" in (
        page.memory_label.text())
    tiny = _dialog(qtbot, Settings(model_path=str(model_270m), n_ctx=32768),
                   machine=Machine.hypothetical(vram_gib=0, ram_gib=1.5))
    _wait_facts(qtbot, tiny, model_270m)
    assert "more than this machine has free" in tiny.model_page.memory_label.text()


def _user_controls(dialog: SettingsDialog) -> list[QWidget]:
    """Inputs a user reaches (not the parts inside a spin box, combo or key editor)."""
    kinds = (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QPlainTextEdit,
             QAbstractItemView, QKeySequenceEdit)
    inner = (QAbstractSpinBox, QComboBox, QKeySequenceEdit, QAbstractItemView)
    out = []
    for w in dialog.findChildren(QWidget):
        if not isinstance(w, kinds):
            continue
        parent = w.parentWidget()
        while parent is not None and parent is not dialog:
            if isinstance(parent, inner):
                break
            parent = parent.parentWidget()
        else:
            out.append(w)
    return out


def test_every_control_has_an_accessible_name_and_tab_follows_the_layout(qtbot):
    dialog = _dialog(qtbot)
    controls = _user_controls(dialog)
    assert len(controls) > 25
    unnamed = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in controls
               if not w.accessibleName()]
    assert unnamed == []
    for index, page in enumerate(dialog.pages):
        dialog.nav.setCurrentRow(index)
        chain = [w for w in page.focus_chain() if w.isEnabled()]
        # Every control of the page is in its chain, so Tab reaches all of them.
        on_page = [w for w in controls if page.isAncestorOf(w) and w.isEnabled()
                   and w.focusPolicy() & Qt.FocusPolicy.TabFocus
                   and not isinstance(w, QRadioButton)]
        assert set(on_page) <= set(chain) | {w for w in chain if isinstance(w, QRadioButton)}, page.title
        order = []
        widget = dialog.nav
        for _ in range(500):
            widget = widget.nextInFocusChain()
            if widget in chain and widget not in order:
                order.append(widget)
            if widget is dialog.ok_button:
                break
        assert order == chain, page.title
        # ...and that order is the reading order on screen: down the page, left to right.
        qtbot.waitUntil(lambda c=chain: all(w.isVisible() for w in c), timeout=2000)
        spots = [w.mapTo(dialog, w.rect().center()) for w in chain]
        for (a, b), w in zip(zip(spots, spots[1:], strict=False), chain[1:], strict=False):
            same_row = abs(a.y() - b.y()) <= 12
            assert (same_row and b.x() > a.x()) or (not same_row and b.y() > a.y()), (
                page.title, w.accessibleName())
