"""One model in the model manager (a row with badges, progress and buttons), and shared formatting.

Sizes of files are shown in decimal GB, as Hugging Face shows them; memory in the planner's
binary GB, as the settings dialog shows it. The style sheet here is built from the app's own
palettes (light.json / dark.json), so the manager and the welcome screen follow the theme.
"""

from __future__ import annotations

from string import Template

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.hardware.devices import HardwareReport
from app.core.hardware.planner import BADGE_TEXT, CPU_ONLY, FULL_GPU, NO_FIT, PARTIAL
from app.ui import theme

GIB = 1024**3

# Row states (what the buttons offer).
AVAILABLE, RUNNING, PAUSED, FAILED, INSTALLED = "available", "running", "paused", "failed", "installed"

_BADGE_COLORS = {  # (light fg, light bg, dark fg, dark bg)
    FULL_GPU: ("#17703a", "#e3f4e8", "#8fd6a6", "#1f3527"),
    PARTIAL: ("#8a5300", "#fdf1dc", "#f5c26b", "#3a2f1c"),
    CPU_ONLY: ("#3c5a8a", "#e7effd", "#a9c4f5", "#223250"),
    NO_FIT: ("#c5221f", "#fdeceb", "#f28b82", "#3a2323"),
}

_QSS = """
#ModelsRoot, #WelcomePane, #ModelList { background: $window; }
#ModelRow { background: $surface; border: 1px solid $border; border-radius: 12px; }
#ModelRow[recommended="true"] { border: 1px solid $accent; }
#ModelTitle { font-weight: 600; font-size: ${fs_large}pt; }
#ModelDetail, #ModelsHint, #ProgressText { color: $text_muted; }
#ModelRepo { color: $text_faint; font-size: ${fs_small}pt; }
#GroupTitle { color: $text_faint; font-weight: 600; font-size: ${fs_small}pt; padding-top: 6px; }
#Tag { border-radius: 9px; padding: 1px 8px; font-size: ${fs_small}pt; font-weight: 600; }
#Tag[kind="recommended"] { color: $accent_text; background: $accent; }
#Tag[kind="installed"] { color: $text_muted; border: 1px solid $border_strong; }
#Tag[kind="inuse"] { color: $accent; border: 1px solid $accent; }
$badges
#RowMessage { color: $danger; }
#RowMessage[kind="info"] { color: $warn_text; }
QPushButton#PrimaryButton {
    background: $accent; color: $accent_text; border: none; border-radius: 9px;
    padding: 7px 16px; font-weight: 600;
}
QPushButton#PrimaryButton:hover { background: $accent_hover; }
QPushButton#PrimaryButton:disabled { background: $border_strong; color: $text_muted; }
QPushButton#SecondaryButton, QPushButton#DangerButton {
    background: $window; border: 1px solid $border_strong; border-radius: 9px; padding: 6px 14px;
}
QPushButton#SecondaryButton:hover { background: $hover; }
QPushButton#DangerButton { color: $danger; }
QPushButton#DangerButton:hover { background: $danger_soft; }
QPushButton#LinkButton { background: transparent; border: none; color: $accent; padding: 4px 6px; }
QPushButton#LinkButton:hover { text-decoration: underline; }
QProgressBar#DownloadProgress {
    background: $border; border: none; border-radius: 4px; max-height: 8px; min-height: 8px;
}
QProgressBar#DownloadProgress::chunk { background: $accent; border-radius: 4px; }
#Notice { background: $danger_soft; border: 1px solid $danger_border; border-radius: 10px; }
#Notice[kind="info"] { background: $accent_soft; border: 1px solid $accent_soft; }
#NoticeText { color: $text; }
#WarningBox { background: $danger_soft; border: 1px solid $danger_border; border-radius: 12px; }
#CommandLine { font-family: monospace; background: $code_bg; border: 1px solid $border;
               border-radius: 6px; padding: 4px 6px; color: $code_text; }
#WelcomeTitle { font-size: ${fs_title}pt; font-weight: 700; }
#HardwareLine { color: $text_muted; font-size: ${fs_large}pt; }
#PickCard { background: $surface; border: 1px solid $border; border-radius: 16px; }
#PickName { font-size: ${fs_title}pt; font-weight: 600; }
#PickReason { color: $text_muted; }
QPushButton#BigButton {
    background: $accent; color: $accent_text; border: none; border-radius: 12px;
    padding: 12px 28px; font-size: ${fs_large}pt; font-weight: 600;
}
QPushButton#BigButton:hover { background: $accent_hover; }
QPushButton#BigButton:disabled { background: $border_strong; color: $text_muted; }
"""


def stylesheet(scheme: str | None = None) -> str:
    """The QSS for the manager and the welcome screen in the current (or given) colour scheme."""
    scheme = scheme or theme.current_scheme()
    colors = theme.palette_colors(scheme)
    dark = scheme == "dark"
    badges = "\n".join(
        f'#Tag[kind="{key}"] {{ color: {c[2] if dark else c[0]}; background: {c[3] if dark else c[1]}; }}'
        for key, c in _BADGE_COLORS.items()
    )
    base = float(theme.BASE_POINT_SIZE)
    sizes = {"fs_small": f"{base * 0.88:.1f}", "fs_large": f"{base * 1.1:.1f}",
             "fs_title": f"{base * 1.5:.1f}"}
    return Template(_QSS).substitute({**colors, **sizes, "badges": badges})


def file_size(n: int) -> str:
    """A download size as Hugging Face shows it (decimal): '5.3 GB', '986 MB'."""
    if n >= 10**9:
        return f"{n / 10**9:.1f} GB"
    if n >= 10**6:
        return f"{n / 10**6:.0f} MB"
    return f"{max(n, 0) / 10**3:.0f} KB"


def memory_size(n: int) -> str:
    """Memory the way the planner and the settings page count it (binary)."""
    return f"{n / GIB:.1f} GB" if n >= GIB / 10 else f"{n / 1024**2:.0f} MB"


def speed_text(bytes_per_s: float) -> str:
    if bytes_per_s >= 10**6:
        return f"{bytes_per_s / 10**6:.1f} MB/s"
    return f"{bytes_per_s / 10**3:.0f} KB/s"


def eta_text(seconds: float) -> str:
    if seconds < 0:
        return "estimating time left"
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s} s left"
    if s < 3600:
        return f"{(s + 30) // 60} min left"
    return f"{s // 3600} h {(s % 3600) // 60} min left"


def progress_text(done: int, total: int, bytes_per_s: float, eta_s: float) -> str:
    """'1.2 GB of 5.3 GB · 45.0 MB/s · 2 min left' (speed and ETA only while moving)."""
    text = f"{file_size(done)} of {file_size(total)}"
    if bytes_per_s > 0:
        text += f" · {speed_text(bytes_per_s)} · {eta_text(eta_s)}"
    return text


def tag(text: str, kind: str, parent: QWidget | None = None) -> QLabel:
    label = QLabel(text, parent)
    label.setObjectName("Tag")
    label.setProperty("kind", kind)
    label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    return label


def button(text: str, kind: str = "SecondaryButton", parent: QWidget | None = None) -> QPushButton:
    b = QPushButton(text, parent)
    b.setObjectName(kind)
    b.setCursor(Qt.CursorShape.PointingHandCursor)
    return b


class ModelRowWidget(QFrame):
    """One catalog entry or imported file: what it is, whether it fits, and what can be done.

    Emits sig_action(key, action) with action one of download, pause, resume, cancel, delete, use.
    """

    sig_action = Signal(str, str)

    def __init__(self, key: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.state = AVAILABLE
        self.setObjectName("ModelRow")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(14, 10, 12, 10)
        outer.setSpacing(4)
        top = QHBoxLayout()
        top.setSpacing(8)
        self.title = QLabel()
        self.title.setObjectName("ModelTitle")
        top.addWidget(self.title)
        self.recommended_tag = tag("Recommended", "recommended")
        self.badge = tag("", CPU_ONLY)
        self.installed_tag = tag("Installed", "installed")
        self.in_use_tag = tag("In use", "inuse")
        for t in (self.recommended_tag, self.badge, self.installed_tag, self.in_use_tag):
            top.addWidget(t)
        top.addStretch(1)
        self.buttons: dict[str, QPushButton] = {}
        for action, text, kind in (
            ("use", "Use", "PrimaryButton"), ("download", "Download", "PrimaryButton"),
            ("resume", "Resume", "PrimaryButton"), ("pause", "Pause", "SecondaryButton"),
            ("cancel", "Cancel", "SecondaryButton"), ("delete", "Delete", "DangerButton"),
        ):
            b = button(text, kind)
            b.setAccessibleName(f"{text} {key}")
            b.clicked.connect(lambda _=False, a=action: self.sig_action.emit(self.key, a))
            top.addWidget(b)
            self.buttons[action] = b
        outer.addLayout(top)
        self.detail = QLabel()
        self.detail.setObjectName("ModelDetail")
        self.detail.setWordWrap(True)
        outer.addWidget(self.detail)
        self.repo = QLabel()
        self.repo.setObjectName("ModelRepo")
        outer.addWidget(self.repo)
        self.progress = QProgressBar()
        self.progress.setObjectName("DownloadProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName(f"Download progress {key}")
        outer.addWidget(self.progress)
        self.progress_text = QLabel()
        self.progress_text.setObjectName("ProgressText")
        outer.addWidget(self.progress_text)
        self.message = QLabel()
        self.message.setObjectName("RowMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.message)
        self.set_state(AVAILABLE)

    def set_info(self, title: str, detail: str, badge: str | None, *, recommended: bool = False,
                 installed: bool = False, in_use: bool = False, repo: str = "") -> None:
        self.title.setText(title)
        self.detail.setText(detail)
        self.repo.setText(repo)
        self.repo.setVisible(bool(repo))
        self.badge.setVisible(badge is not None)
        if badge is not None:
            self.badge.setText(BADGE_TEXT.get(badge, badge))
            self.badge.setProperty("kind", badge)
            self.badge.setToolTip("How this model fits this computer at the chosen context length")
            _repolish(self.badge)
        self.recommended_tag.setVisible(recommended)
        self.installed_tag.setVisible(installed and not in_use)
        self.in_use_tag.setVisible(in_use)
        self.setProperty("recommended", recommended)
        _repolish(self)
        self.buttons["use"].setEnabled(not in_use)

    def set_state(self, state: str, message: str = "") -> None:
        """Which buttons show: the state of the files and of any download job."""
        self.state = state
        shown = {
            AVAILABLE: {"download"}, RUNNING: {"pause", "cancel"}, PAUSED: {"resume", "cancel"},
            FAILED: {"resume", "cancel"}, INSTALLED: {"use", "delete"},
        }[state]
        for action, b in self.buttons.items():
            b.setVisible(action in shown)
        self.buttons["resume"].setText("Retry" if state == FAILED else "Resume")
        moving = state in (RUNNING, PAUSED, FAILED)
        self.progress.setVisible(moving)
        self.progress_text.setVisible(moving)
        self.message.setText(message)
        self.message.setProperty("kind", "error" if state == FAILED else "info")
        _repolish(self.message)
        self.message.setVisible(bool(message))

    def set_progress(self, done: int, total: int, bytes_per_s: float, eta_s: float,
                     paused: bool = False) -> None:
        self.progress.setValue(int(1000 * done / total) if total > 0 else 0)
        text = progress_text(done, total, 0.0 if paused else bytes_per_s, eta_s)
        if paused:
            text = f"Paused — resume · {text}"
        self.progress_text.setText(text)


def _repolish(widget: QWidget) -> None:
    # Dynamic properties only restyle after an unpolish/polish cycle.
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)


class GpuWarningBox(QFrame):
    """'This machine has a GPU the installed llama.cpp cannot use', with the exact, copyable fix."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("WarningBox")
        layout = QVBoxLayout(self)
        self.text = QLabel()
        self.text.setWordWrap(True)
        layout.addWidget(self.text)
        row = QHBoxLayout()
        self.command = QLineEdit()
        self.command.setObjectName("CommandLine")
        self.command.setReadOnly(True)
        self.command.setAccessibleName("Reinstall command")
        row.addWidget(self.command, 1)
        self.copy_button = button("Copy")
        self.copy_button.setAccessibleName("Copy the reinstall command")
        self.copy_button.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.command.text()))
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        self.hide()

    def set_report(self, report: HardwareReport | None) -> None:
        warning = report.warning if report is not None else None
        self.setVisible(bool(warning))
        if report is not None and warning:
            # The command goes in its own copyable field, not at the end of a sentence.
            self.text.setText(warning.split(" Reinstall it")[0] + " Reinstall it with GPU support:")
            self.command.setText(report.reinstall_command or "")
            self.command.setCursorPosition(0)


def hardware_text(report: HardwareReport | None, error: str = "") -> str:
    """The report's one-line summary, capitalised for a label (or the probe's error)."""
    text = report.summary() if report is not None else error
    return text[:1].upper() + text[1:]


def ask_hf_token(parent: QWidget, repo_id: str, had_token: bool) -> str | None:
    """Ask for a Hugging Face token (typed hidden); None if the user cancels."""
    dialog = QInputDialog(parent)
    dialog.setObjectName("TokenDialog")
    dialog.setWindowTitle("Hugging Face token")
    if had_token:
        text = f"Your saved token cannot open {repo_id}. Accept the model's license on its page, "
    else:
        text = f"{repo_id} is gated or private. "
    dialog.setLabelText(text + "Paste a Hugging Face access token (huggingface.co/settings/tokens); "
                        "it is kept where huggingface_hub keeps it.")
    dialog.setTextEchoMode(QLineEdit.EchoMode.Password)
    if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.textValue().strip():
        return None
    return dialog.textValue().strip()
