"""The microphone in the composer: click to start/stop, hold to talk, a shortcut, Esc cancels.

While recording, a bar in the composer shows a live level meter and the seconds left before the
30-second cap. The recorder (app.services.recorder.MicrophoneRecorder) does the audio work; this
module only turns presses into start/stop/cancel and shows what the recorder reports.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QPainter, QPaintEvent, QShortcut
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from app.ui import theme

# A press held longer than this is push-to-talk (release stops); a shorter one is a click (toggle).
HOLD_THRESHOLD_S = 0.3
DEFAULT_SHORTCUT = "Ctrl+Space"

IDLE, RECORDING, PUSH_TO_TALK, SAVING = "idle", "recording", "push_to_talk", "saving"


class LevelMeter(QWidget):
    """A row of bars lit up to the current level (0..1), with a short peak hold."""

    BARS = 24

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LevelMeter")
        self.setAccessibleName("Microphone level")
        self.setFixedHeight(18)
        self.setMinimumWidth(120)
        self._level = 0.0
        self._peak = 0.0

    @property
    def level(self) -> float:
        return self._level

    def set_level(self, level: float) -> None:
        self._level = max(0.0, min(1.0, float(level)))
        self._peak = max(self._level, self._peak * 0.92)
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        gap = 3.0
        width = (self.width() - gap * (self.BARS - 1)) / self.BARS
        lit = round(self._level * self.BARS)
        peak = min(self.BARS - 1, round(self._peak * self.BARS))
        on = QColor(theme.color("accent"))
        off = QColor(theme.color("border"))
        for i in range(self.BARS):
            # Bars grow from the middle up: a voice-memo look that reads as "sound" at a glance.
            shape = 0.35 + 0.65 * (1 - abs(i - (self.BARS - 1) / 2) / (self.BARS / 2)) ** 0.5
            h = max(4.0, self.height() * shape)
            painter.setBrush(on if i < lit or (i == peak and self._peak > 0.02) else off)
            painter.drawRoundedRect(QRectF(i * (width + gap), (self.height() - h) / 2, width, h), 1.5, 1.5)
        painter.end()


class RecordingBar(QFrame):
    """Red dot · level meter · '0:27 left' · Cancel · Done."""

    sig_stop_clicked = Signal()
    sig_cancel_clicked = Signal()
    sig_theme_refreshed = Signal()  # the composer re-tints its buttons first; the mic follows

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("RecordingBar")
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 6, 4)
        row.setSpacing(10)
        self.dot = QLabel(self)
        self.dot.setFixedSize(10, 10)
        row.addWidget(self.dot)
        self.state_label = QLabel("Recording", self)
        self.state_label.setObjectName("RecordingState")
        row.addWidget(self.state_label)
        self.meter = LevelMeter(self)
        row.addWidget(self.meter, 1)
        self.countdown = QLabel(self)
        self.countdown.setObjectName("RecordingCountdown")
        self.countdown.setAccessibleName("Time left")
        row.addWidget(self.countdown)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Throw the recording away (Esc)")
        self.cancel_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.cancel_button.clicked.connect(self.sig_cancel_clicked)
        row.addWidget(self.cancel_button)
        self.stop_button = QPushButton("Done", self)
        self.stop_button.setToolTip("Stop recording and keep the clip")
        self.stop_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.stop_button.clicked.connect(self.sig_stop_clicked)
        row.addWidget(self.stop_button)
        self.set_time(0.0, 30.0)
        self.refresh_icons()
        self.setVisible(False)

    def set_time(self, elapsed: float, cap: float) -> None:
        # Elapsed counts down whole seconds, "left" up to them: together they always add to the cap.
        left = max(0.0, cap - elapsed)
        whole = int(elapsed)
        self.countdown.setText(f"{whole // 60}:{whole % 60:02d} · {int(left + 0.999)} s left")

    def set_push_to_talk(self, held: bool) -> None:
        self.state_label.setText("Listening — release to stop" if held else "Recording")
        self.stop_button.setVisible(not held)

    def set_saving(self) -> None:
        self.state_label.setText("Saving…")
        self.meter.set_level(0.0)

    def refresh_icons(self) -> None:
        self.dot.setStyleSheet(f"background: {theme.color('danger')}; border-radius: 5px;")
        self.setStyleSheet(
            f"QFrame#RecordingBar {{ background: {theme.color('danger_soft')};"
            f" border: 1px solid {theme.color('danger_border')}; border-radius: 12px; }}"
            f" QLabel#RecordingState {{ color: {theme.color('danger')}; font-weight: 600; }}"
            f" QLabel#RecordingCountdown {{ color: {theme.color('text')}; }}")
        self.sig_theme_refreshed.emit()


class VoiceController(QObject):
    """Drives a MicrophoneRecorder from the mic button, the push-to-talk shortcut and Esc."""

    sig_clip_ready = Signal(str, float)  # wav path, seconds
    sig_message = Signal(str)  # plain words: silence, no microphone, ...
    sig_state_changed = Signal(str)
    sig_blocked = Signal()  # the mic was pressed while voice input is unavailable (see set_blocked)

    def __init__(self, recorder: Any, button: QToolButton, bar: RecordingBar, settings: Any,
                 shortcut_parent: QWidget, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._recorder = recorder
        self._button = button
        self._bar = bar
        self._settings = settings
        self._state = IDLE
        self._pressed_at: float | None = None
        self._started_by_press = False
        self._mouse_handled = False
        self._blocked_reason = ""
        self._idle_tip = button.toolTip()
        button.installEventFilter(self)
        bar.sig_stop_clicked.connect(self.stop)
        bar.sig_cancel_clicked.connect(self.cancel)
        bar.sig_theme_refreshed.connect(self._update_button)
        recorder.sig_started.connect(self._on_recorder_started)
        recorder.sig_level.connect(bar.meter.set_level)
        recorder.sig_elapsed.connect(self._on_recorder_elapsed)
        recorder.sig_finished.connect(self._on_recorder_finished)
        recorder.sig_failed.connect(self._on_recorder_failed)
        recorder.sig_cancelled.connect(self._on_recorder_cancelled)
        self.shortcut = QShortcut(self._shortcut_sequence(), shortcut_parent)
        self.shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self.shortcut.activated.connect(self.toggle)
        self._update_button()

    # ---- public -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def recording(self) -> bool:
        return self._state in (RECORDING, PUSH_TO_TALK)

    @property
    def blocked_reason(self) -> str:
        return self._blocked_reason

    def set_blocked(self, reason: str) -> None:
        """Voice input cannot work now (reason shown as the tooltip); '' allows it again."""
        self._blocked_reason = reason
        self._update_button()

    def refresh_shortcut(self) -> None:
        """Re-read settings.push_to_talk_shortcut (after the settings dialog changed it)."""
        self.shortcut.setKey(self._shortcut_sequence())
        self._update_button()

    def toggle(self) -> None:
        """Start when idle, stop when recording (a click, the shortcut, or keyboard activation)."""
        if self.recording:
            self.stop()
        elif self._state == IDLE:
            self.start()

    def start(self) -> None:
        if self._state != IDLE:
            return
        if self._blocked_reason:
            self.sig_blocked.emit()
            return
        self._recorder.start(self._settings.microphone_id or None)

    def stop(self) -> None:
        if self.recording:
            self._set_state(SAVING)
            self._bar.set_saving()
            self._recorder.stop()

    def cancel(self) -> bool:
        """Throw the recording away; False when nothing was recording."""
        if not self.recording:
            return False
        self._recorder.cancel()
        return True

    # ---- the mic button: click toggles, hold talks ------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self._button:
            kind = event.type()
            if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
                self._mouse_handled = True
                self._on_button_pressed()
            elif kind == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
                self._mouse_handled = True
                self._on_button_released()
                # clicked() fires during this release; forget the mark once it has been seen.
                QTimer.singleShot(0, self._clear_mouse_mark)
        return False

    def on_button_clicked(self) -> None:
        """The button's clicked(): mouse clicks are handled on press/release; keyboard toggles."""
        if self._mouse_handled:
            return
        self.toggle()

    def _clear_mouse_mark(self) -> None:
        self._mouse_handled = False

    def _on_button_pressed(self) -> None:
        if self._state == IDLE:
            self._pressed_at = time.monotonic()
            self._started_by_press = True
            self.start()
        elif self._state == RECORDING:
            self._started_by_press = False
            self.stop()

    def _on_button_released(self) -> None:
        pressed_at, self._pressed_at = self._pressed_at, None
        if not self._started_by_press or pressed_at is None:
            return
        self._started_by_press = False
        if self._state == PUSH_TO_TALK or (
                self.recording and time.monotonic() - pressed_at >= HOLD_THRESHOLD_S):
            self.stop()

    # ---- recorder signals -------------------------------------------------------------------

    def _on_recorder_started(self) -> None:
        self._set_state(RECORDING)
        self._bar.set_push_to_talk(False)
        self._bar.set_time(0.0, float(getattr(self._recorder, "max_seconds", 30.0)))
        self._bar.meter.set_level(0.0)
        self._bar.setVisible(True)
        if self._pressed_at is not None:
            # Held past the threshold: say "release to stop" while the button is still down.
            QTimer.singleShot(int(HOLD_THRESHOLD_S * 1000), self._on_hold_timer_timeout)

    def _on_hold_timer_timeout(self) -> None:
        if self._state == RECORDING and self._pressed_at is not None and self._button.isDown():
            self._set_state(PUSH_TO_TALK)
            self._bar.set_push_to_talk(True)

    def _on_recorder_elapsed(self, seconds: float) -> None:
        self._bar.set_time(seconds, float(getattr(self._recorder, "max_seconds", 30.0)))

    def _on_recorder_finished(self, path: str, seconds: float) -> None:
        self._end()
        self.sig_clip_ready.emit(path, seconds)

    def _on_recorder_failed(self, message: str) -> None:
        self._end()
        self.sig_message.emit(message)

    def _on_recorder_cancelled(self) -> None:
        self._end()

    # ---- internals --------------------------------------------------------------------------

    def _end(self) -> None:
        self._pressed_at = None
        self._started_by_press = False
        self._bar.setVisible(False)
        self._set_state(IDLE)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._update_button()
            self.sig_state_changed.emit(state)

    def _shortcut_sequence(self) -> QKeySequence:
        text = str(self._settings.push_to_talk_shortcut or DEFAULT_SHORTCUT)
        return QKeySequence(text)

    def _update_button(self) -> None:
        key = self.shortcut.key().toString(QKeySequence.SequenceFormat.NativeText) \
            if hasattr(self, "shortcut") else DEFAULT_SHORTCUT
        button = self._button
        if self.recording:
            button.setIcon(theme.icon("stop", "danger", 20))
            button.setToolTip(f"Stop recording (click or {key}) · Esc throws it away")
            button.setAccessibleName("Stop recording")
        else:
            button.setIcon(theme.icon("mic", "text_faint" if self._blocked_reason else "text_muted", 20))
            tip = self._blocked_reason or (
                f"Record a voice message — click to start and stop, hold to talk, or press {key}")
            button.setToolTip(tip)
            button.setAccessibleName("Record a voice message")
        button.setProperty("recording", self.recording)

    def refresh_icons(self) -> None:
        self._update_button()
        self._bar.refresh_icons()
