"""The conversation list on the left: New chat, search, and the conversations newest first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ui import theme

ID_ROLE = Qt.ItemDataRole.UserRole
TITLE_ROLE = Qt.ItemDataRole.UserRole + 1  # the title alone (a search result's text adds a snippet)
SEARCH_DEBOUNCE_MS = 200


class SidebarPane(QWidget):
    """Lists conversations and asks (by signal) for new, open, rename, delete and search."""

    sig_new_requested = Signal()
    sig_selected = Signal(object)  # conversation id
    sig_rename_requested = Signal(object, str)  # id, new title
    sig_delete_requested = Signal(object)  # id
    sig_search_changed = Signal(str)
    sig_overrides_requested = Signal(object)  # id: per-conversation system prompt / preset
    sig_export_requested = Signal(object)  # id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setMinimumWidth(220)
        self._updating = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 14, 12, 12)
        layout.setSpacing(10)

        self.new_button = QPushButton("  New chat", self)
        self.new_button.setObjectName("NewChatButton")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.new_button.clicked.connect(self.sig_new_requested)
        layout.addWidget(self.new_button)

        self.search_box = QLineEdit(self)
        self.search_box.setObjectName("SearchBox")
        self.search_box.setPlaceholderText("Search chats")
        self.search_box.setAccessibleName("Search conversations")
        self.search_box.setClearButtonEnabled(True)
        self._search_action = QAction(self.search_box)
        self.search_box.addAction(self._search_action, QLineEdit.ActionPosition.LeadingPosition)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(self._on_search_timer_timeout)
        self.search_box.textChanged.connect(self._on_search_box_text_changed)
        layout.addWidget(self.search_box)

        self.section_label = QLabel("Chats", self)
        self.section_label.setObjectName("SidebarSection")
        layout.addWidget(self.section_label)

        self.list = QListWidget(self)
        self.list.setObjectName("ConversationList")
        self.list.setAccessibleName("Conversations")
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._on_list_context_menu_requested)
        self.list.currentItemChanged.connect(self._on_list_current_item_changed)
        self.list.itemChanged.connect(self._on_list_item_changed)
        self.list.installEventFilter(self)
        layout.addWidget(self.list, 1)

        self.empty_label = QLabel("No conversations yet", self)
        self.empty_label.setObjectName("EmptyHint")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.empty_label)
        self.refresh_icons()

    # ---- content ----------------------------------------------------------------------------

    def set_conversations(self, conversations: Iterable[Any], current_id: Any = None) -> None:
        """Replace the list; items are objects with .id and .title, already newest first."""
        self._updating = True
        try:
            self.list.clear()
            for conversation in conversations:
                title = getattr(conversation, "title", "") or "New chat"
                snippet = " ".join(str(getattr(conversation, "snippet", "") or "").split())
                # A search result shows where it matched; its two-line text is not renamed in place.
                item = QListWidgetItem(f"{title}\n{snippet}" if snippet else title)
                item.setData(ID_ROLE, conversation.id)
                item.setData(TITLE_ROLE, title)
                item.setToolTip(f"{title}\n{snippet}" if snippet else title)
                if not snippet:
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                self.list.addItem(item)
                if current_id is not None and conversation.id == current_id:
                    self.list.setCurrentItem(item)
        finally:
            self._updating = False
        searching = bool(self.search_box.text().strip())
        self.section_label.setText("Results" if searching else "Chats")
        self.empty_label.setText("No matches" if searching else "No conversations yet")
        self.empty_label.setVisible(self.list.count() == 0)

    def conversation_ids(self) -> list[Any]:
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]

    def titles(self) -> list[str]:
        return [self.list.item(i).data(TITLE_ROLE) or self.list.item(i).text()
                for i in range(self.list.count())]

    def select(self, conversation_id: Any) -> None:
        """Highlight a conversation without asking to open it."""
        self._updating = True
        try:
            self.list.clearSelection()
            self.list.setCurrentRow(-1)
            for i in range(self.list.count()):
                item = self.list.item(i)
                if item.data(ID_ROLE) == conversation_id:
                    self.list.setCurrentItem(item)
                    break
        finally:
            self._updating = False

    def start_rename(self, conversation_id: Any = None) -> None:
        """Edit a title in place (F2); Enter commits, Esc cancels."""
        item = self._item_for(conversation_id) if conversation_id is not None else self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def request_delete(self, conversation_id: Any = None) -> None:
        item = self._item_for(conversation_id) if conversation_id is not None else self.list.currentItem()
        if item is not None and self.confirm_delete(item.data(TITLE_ROLE) or item.text()):
            self.sig_delete_requested.emit(item.data(ID_ROLE))

    def confirm_delete(self, title: str) -> bool:
        """Ask before deleting; a dialog the user answers."""
        box = QMessageBox(QMessageBox.Icon.Question, "Delete conversation",
                          f"Delete “{title}”? Its messages and attachments are removed from "
                          "this computer.", QMessageBox.StandardButton.Cancel, self)
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is delete

    def focus_search(self) -> None:
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    def refresh_icons(self) -> None:
        self.new_button.setIcon(theme.icon("new_chat", "text", 18))
        self._search_action.setIcon(theme.icon("search", "text_faint", 16))

    # ---- internals --------------------------------------------------------------------------

    def _item_for(self, conversation_id: Any) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(ID_ROLE) == conversation_id:
                return item
        return None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.list and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() == Qt.Key.Key_F2:
                self.start_rename()
                return True
            if event.key() == Qt.Key.Key_Delete:
                self.request_delete()
                return True
        return super().eventFilter(watched, event)

    def _on_list_context_menu_requested(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        conversation_id = item.data(ID_ROLE)
        menu = QMenu(self)
        rename = menu.addAction(theme.icon("rename", "text", 16), "Rename")
        rename.setShortcut("F2")
        delete = menu.addAction(theme.icon("trash", "danger", 16), "Delete")
        delete.setShortcut("Del")
        menu.addSeparator()
        overrides = menu.addAction("Conversation settings…")
        export = menu.addAction("Export…")
        chosen = menu.exec(self.list.viewport().mapToGlobal(pos))
        if chosen is overrides:
            self.sig_overrides_requested.emit(conversation_id)
        elif chosen is export:
            self.sig_export_requested.emit(conversation_id)
        elif chosen is rename:
            self.start_rename(conversation_id)
        elif chosen is delete:
            self.request_delete(conversation_id)

    def _on_list_current_item_changed(self, current: QListWidgetItem | None,
                                      _previous: QListWidgetItem | None) -> None:
        if not self._updating and current is not None:
            self.sig_selected.emit(current.data(ID_ROLE))

    def _on_list_item_changed(self, item: QListWidgetItem) -> None:
        # Fires when an in-place edit is committed (and on set-up, which _updating skips).
        if self._updating:
            return
        conversation_id, title = item.data(ID_ROLE), item.text().strip()
        # The rename refreshes (clears) this list: do it after the editor has let go of the item.
        QTimer.singleShot(0, self, lambda: self._emit_rename(conversation_id, title))

    def _emit_rename(self, conversation_id: Any, title: str) -> None:
        if title:
            self.sig_rename_requested.emit(conversation_id, title)
        else:  # an emptied title is not a rename: show the stored one again
            self.sig_search_changed.emit(self.search_box.text().strip())

    def _on_search_box_text_changed(self, _text: str) -> None:
        self._search_timer.start()

    def _on_search_timer_timeout(self) -> None:
        self.sig_search_changed.emit(self.search_box.text().strip())
