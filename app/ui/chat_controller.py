"""Glue between the composer, the transcript, the chat session (storage) and the engine client.

Send: ChatSession.send -> client.generate(engine_messages) -> deltas into the view ->
ChatSession.finish with the stats. Stop keeps the partial answer as "stopped"; an engine crash
keeps it as "interrupted". The window owns the widgets; this class owns the flow.
Over 400 lines: send, stream, stop, crash and the tool loop's hand-off are one state machine;
the answer in progress lives in chat_generation.py and the tool turns in chat_tools.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.engine.records import Reply
from app.core.storage.records import ToolStep
from app.ui.branch_switcher import branch_positions, sibling_at
from app.ui.chat_generation import Generation, generation_params
from app.ui.chat_tools import WindowTools
from app.ui.chat_view import ChatView
from app.ui.media_formats import with_image_detail
from app.ui.messages import AssistantMessageWidget

log = logging.getLogger(__name__)

NO_MODEL_MESSAGE = "No model is loaded. Open a GGUF model with File → Open model… (Ctrl+O)."


class ChatController(QObject):
    """Runs conversations: open, send, stream, stop, regenerate, and the conversation list."""

    sig_busy_changed = Signal(bool)
    sig_conversations_changed = Signal(list, object)  # conversations newest first, current id
    sig_conversation_opened = Signal(object, str)  # id (None for a new chat), title
    sig_generation_finished = Signal(dict)  # stats
    sig_error = Signal(str)  # plain words with the action to take

    def __init__(self, settings: Any, store: Any, session: Any, client: Any, view: ChatView,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self._store = store
        self._session = session
        self._client = client
        self._view = view
        self._conversation_id: Any = None
        self._gen: Generation | None = None
        self._model_name = ""
        self._search = ""
        self._hits: dict[Any, Any] = {}  # conversation id -> best matching message id
        self.tools: WindowTools | None = None  # set by the window: tools offered to the model
        client.sig_delta.connect(self._on_client_delta)
        client.sig_finished.connect(self._on_client_finished)
        client.sig_failed.connect(self._on_client_failed)
        client.sig_engine_crashed.connect(self._on_client_engine_crashed)
        client.sig_loaded.connect(self._on_client_loaded)
        view.sig_regenerate_requested.connect(self._on_view_regenerate_requested)
        view.sig_edit_submitted.connect(self.edit_and_resend)
        view.sig_branch_step_requested.connect(self.step_branch)

    # ---- state ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._gen is not None

    @property
    def conversation_id(self) -> Any:
        return self._conversation_id

    @property
    def model_name(self) -> str:
        return self._model_name

    def set_model_name(self, name: str) -> None:
        self._model_name = name

    # ---- conversations ----------------------------------------------------------------------

    def refresh_conversations(self) -> None:
        if self._search:
            seen: dict[Any, Any] = {}
            for hit in self._store.search(self._search):
                if hit.conversation_id not in seen:
                    seen[hit.conversation_id] = _Row(hit.conversation_id, hit.title, hit.snippet)
                    self._hits[hit.conversation_id] = hit.message_id
            rows: list[Any] = list(seen.values())
        else:
            rows = list(self._store.list_conversations())
        self.sig_conversations_changed.emit(rows, self._conversation_id)

    def set_search(self, query: str) -> None:
        self._search = query.strip()
        self._hits = {}
        self.refresh_conversations()

    def new_conversation(self) -> None:
        """An empty chat; it is stored when its first message is sent."""
        self._detach_live_widget()
        self._conversation_id = None
        self._view.clear()
        self.sig_conversation_opened.emit(None, "New chat")
        self.refresh_conversations()

    def open_conversation(self, conversation_id: Any) -> None:
        if conversation_id == self._conversation_id and not self._view.is_empty():
            self._reveal_search_hit(conversation_id)
            return
        try:
            conversation = self._store.get_conversation(conversation_id)
            thread = self._store.thread(conversation_id)
        except Exception as exc:  # noqa: BLE001 - a vanished row is a message, not a crash
            log.exception("could not open conversation %s", conversation_id)
            self.sig_error.emit(str(exc) or "This conversation could not be opened.")
            return
        self._detach_live_widget()
        self._conversation_id = conversation_id
        gen = self._gen
        if gen is not None and gen.conversation_id == conversation_id:
            # Coming back to the chat that is still streaming: show what arrived so far, live.
            self._view.load_thread([m for m in thread if m.id != gen.message_id])
            gen.widget = self._view.add_assistant_message(self._model_name, gen.message_id)
            gen.widget.add_stored_steps(gen.steps)
            if gen.turn is not None:
                gen.turn.rebind(gen.widget)
            gen.widget.append_thinking("".join(gen.thinking))
            if gen.answer:
                gen.widget.append_answer("".join(gen.answer))
        else:
            self._view.load_thread(thread)
        self._show_branches()
        self.sig_conversation_opened.emit(conversation_id, conversation.title)
        self._reveal_search_hit(conversation_id)

    def rename_conversation(self, conversation_id: Any, title: str) -> None:
        conversation = self._store.rename_conversation(conversation_id, title)
        if conversation_id == self._conversation_id:
            self.sig_conversation_opened.emit(conversation_id, conversation.title)
        self.refresh_conversations()

    def delete_conversation(self, conversation_id: Any) -> None:
        gen = self._gen
        if gen is not None and gen.conversation_id == conversation_id:
            # Its answer has nowhere to go any more; the chat stays busy until the engine
            # confirms the stop, so the next answer cannot start while this one still runs.
            gen.discarded = True
            gen.widget = None
            self.stop()
        self._store.delete_conversation(conversation_id)
        if conversation_id == self._conversation_id:
            self.new_conversation()
        else:
            self.refresh_conversations()

    # ---- generation -------------------------------------------------------------------------

    def send(self, text: str, attachments: list[Any] | None = None) -> bool:
        """Store the user's message and start the answer; False (and sig_error) if it cannot."""
        text = text.strip()
        if self._gen is not None or (not text and not attachments):
            return False
        if not self._model_loaded():
            self.sig_error.emit(NO_MODEL_MESSAGE)
            return False
        new = self._conversation_id is None
        if new:
            self._conversation_id = self._store.create_conversation().id
        conversation_id = self._conversation_id
        user_msg, placeholder = self._session.send(conversation_id, text, list(attachments or []),
                                                   model=self._model_name or None)
        if new:  # the session titled it after the first message
            title = self._store.get_conversation(conversation_id).title
            self.sig_conversation_opened.emit(conversation_id, title)
        self._view.add_user_message(user_msg.content, user_msg.id, user_msg.attachments)
        self._view.update_regenerate_button(False)
        widget = self._view.add_assistant_message(self._model_name, placeholder.id)
        self._start(conversation_id, user_msg.id, placeholder.id, widget)
        self.refresh_conversations()
        return True

    def regenerate(self, message_id: Any = None) -> bool:
        """Write a new answer to the last user message (the old answer stays as a branch)."""
        if self._gen is not None or self._conversation_id is None:
            return False
        if not self._model_loaded():
            self.sig_error.emit(NO_MODEL_MESSAGE)
            return False
        last = self._view.last_assistant()
        if last is None or (message_id is not None and last.message_id != message_id):
            return False
        placeholder = self._session.regenerate(last.message_id, model=self._model_name or None)
        self._view.remove_message(last)
        widget = self._view.add_assistant_message(self._model_name, placeholder.id)
        self._start(self._conversation_id, placeholder.parent_id, placeholder.id, widget)
        return True

    def edit_and_resend(self, user_message_id: Any, text: str) -> bool:
        """Send a new version of an earlier user message; the old branch stays (‹ 1/2 ›)."""
        text = text.strip()
        if self._gen is not None or self._conversation_id is None or not text:
            return False
        if not self._model_loaded():
            self.sig_error.emit(NO_MODEL_MESSAGE)
            return False
        user, placeholder = self._session.edit_and_resend(user_message_id, text,
                                                          model=self._model_name or None)
        thread = self._store.thread(self._conversation_id, user.id)
        self._view.load_thread(thread)
        widget = self._view.add_assistant_message(self._model_name, placeholder.id)
        self._view.update_regenerate_button(False)
        self._start(self._conversation_id, user.id, placeholder.id, widget)
        return True

    def step_branch(self, message_id: Any, step: int) -> bool:
        """Show the previous/next version of a message and the thread below it."""
        gen = self._gen
        if self._conversation_id is None or (gen is not None
                                             and gen.conversation_id == self._conversation_id):
            return False  # the branch being written must stay on screen
        target = sibling_at(self._store.siblings(message_id), message_id, step)
        if target is None:
            return False
        self._store.select_branch(target.id)
        self._view.load_thread(self._store.thread(self._conversation_id))
        self._show_branches()
        self._view.reveal_message(target.id, highlight=False)
        return True

    def stop(self) -> None:
        """Stop now; the partial answer is kept and marked stopped when the engine confirms."""
        gen = self._gen
        if gen is not None:
            gen.stop_requested = True
            if gen.turn is not None and gen.turn.active:  # between generations: end right here
                self._finish("stopped", gen.stats)
                return
            self._client.stop()

    def set_thinking_enabled(self, enabled: bool) -> None:
        self._settings.enable_thinking = enabled

    # ---- internals --------------------------------------------------------------------------

    def _model_loaded(self) -> bool:
        info = self._client.model_info
        return info is not None or bool(self._model_name)

    def _params(self, conversation_id: Any = None) -> dict[str, Any]:
        preset = (getattr(self._store.get_conversation(conversation_id), "preset", None)
                  if conversation_id is not None else None)
        return generation_params(self._settings, preset)

    def _show_branches(self) -> None:
        if self._conversation_id is None:
            return
        thread = self._store.thread(self._conversation_id)
        self._view.set_branches(branch_positions(self._store.messages(self._conversation_id),
                                                 thread))

    def _reveal_search_hit(self, conversation_id: Any) -> None:
        message_id = self._hits.get(conversation_id) if self._search else None
        if message_id is None:
            return
        if self._view.message_widget(message_id) is None:
            gen = self._gen
            if gen is not None and gen.conversation_id == conversation_id:
                return  # the hit is on another branch, and this one is being written
            self._store.select_branch(message_id)  # the hit is on another branch: show that one
            self._view.load_thread(self._store.thread(conversation_id))
            self._show_branches()
        self._view.reveal_message(message_id)

    def _start(self, conversation_id: Any, leaf_id: Any, message_id: Any,
               widget: AssistantMessageWidget) -> None:
        # The session applies the conversation's own system prompt over the settings' one.
        messages = self._session.engine_messages(
            conversation_id, leaf_id, self._settings.system_prompt or "")
        messages = with_image_detail(messages, self._settings.image_detail)
        turn = self.tools.begin_turn() if self.tools is not None else None
        self._gen = Generation(conversation_id, message_id, widget, turn=turn, messages=messages)
        if turn is not None:
            turn.sig_step_done.connect(self._on_turn_step_done)
        self._show_branches()
        if self._generate(self._gen):
            self.sig_busy_changed.emit(True)

    def _generate(self, gen: Generation) -> bool:
        """Ask the engine for the next reply of this answer (its tools offered, if any)."""
        extra = {"tools": gen.turn.declarations} if gen.turn is not None else {}
        try:
            gen.request_id = self._client.generate(gen.messages, bool(self._settings.enable_thinking),
                                                   self._params(gen.conversation_id), **extra)
        except RuntimeError as exc:  # the engine is not running, or still ending an answer
            log.exception("generate failed to start")
            self._finish("error", {}, error=f"Could not start the answer: {exc}. Restart the engine "
                                            "or open the model again.")
            return False
        return True

    def _detach_live_widget(self) -> None:
        if self._gen is not None:
            self._gen.widget = None  # the view is about to be cleared; keep buffering text

    def _finish(self, status: str, stats: dict[str, Any], error: str | None = None) -> None:
        gen = self._gen
        if gen is None:
            return
        self._gen = None
        if gen.turn is not None:
            record = gen.turn.stop()  # a step whose calls were still asked about or running
            if record is not None:
                gen.steps.append(record)
            gen.turn.close()
        if gen.discarded:
            self.sig_busy_changed.emit(False)
            return
        thinking, answer = "".join(gen.thinking), "".join(gen.answer)
        if gen.thinking_started is not None and gen.thinking_ended is None:
            gen.thinking_ended = time.monotonic()
        seconds = gen.thinking_seconds()
        try:
            self._session.finish(gen.message_id, answer.strip(), thinking.strip(), status, stats,
                                 seconds, tool_steps=gen.steps)
        except Exception:  # noqa: BLE001 - the conversation may have been deleted meanwhile
            log.exception("could not store the finished answer")
        if gen.widget is not None:
            gen.widget.finish(status, stats, seconds, error)
            self._view.update_regenerate_button(True)
            self._show_branches()
        self.sig_busy_changed.emit(False)
        self.sig_generation_finished.emit(stats)
        self.refresh_conversations()

    def _ours(self, request_id: int) -> bool:
        return self._gen is not None and self._gen.request_id == request_id

    def _on_client_delta(self, request_id: int, kind: str, text: str) -> None:
        gen = self._gen
        if gen is None or gen.request_id != request_id:
            return
        now = time.monotonic()
        if kind == "tool_call":
            if gen.turn is not None:
                gen.call_blocks.append(text)
                gen.turn.add_block(text, gen.widget)  # shown now, run when the reply is over
            return
        if kind == "thinking":
            if gen.thinking_started is None:
                gen.thinking_started = now
            gen.thinking.append(text)
            if gen.widget is not None:
                gen.widget.append_thinking(text)
        else:
            if gen.thinking_started is not None and gen.thinking_ended is None and text.strip():
                gen.thinking_ended = now
            gen.answer.append(text)
            if gen.widget is not None:
                gen.widget.append_answer(text)

    def _on_client_finished(self, reply: Reply) -> None:
        if not self._ours(reply.id):
            return
        gen = self._gen
        assert gen is not None and reply.stats is not None
        gen.stats = asdict(reply.stats)
        stopped = reply.stats.stopped or gen.stop_requested
        if gen.turn is not None and gen.call_blocks:
            self._run_tools(gen, stopped)
            if not stopped:
                return
        self._finish("stopped" if stopped else "complete", gen.stats)

    def _run_tools(self, gen: Generation, stopped: bool) -> None:
        """The reply ended in tool calls: they become a step of this answer (run unless stopped)."""
        assert gen.turn is not None
        if stopped:
            gen.turn.loop.stop()  # the calls are shown and answered "stopped", never run
        step = gen.turn.plan("".join(gen.answer).strip(), "".join(gen.thinking).strip())
        seconds = gen.thinking_seconds()
        if gen.widget is not None:
            gen.widget.end_step(seconds)
        gen.next_reply()
        gen.turn.run(step, gen.widget, seconds)  # sig_step_done follows (stop: _finish takes it)

    def _on_turn_step_done(self, record: ToolStep, messages: list[dict[str, Any]],
                           last: bool) -> None:
        gen = self._gen
        if gen is None or gen.turn is not self.sender():
            return
        gen.steps.append(record)
        gen.messages = [*gen.messages, *messages]
        try:  # kept at once: a crash in the next reply still shows what the tools did
            self._store.update_message(gen.message_id, tool_steps=gen.steps)
        except Exception:  # noqa: BLE001 - the conversation may have been deleted meanwhile
            log.exception("could not store the tool step")
        if last or gen.stop_requested:
            self._finish("stopped" if gen.stop_requested else "complete", gen.stats)
            return
        if gen.widget is not None:
            gen.widget.next_step()
        gen.started_at = time.monotonic()
        self._generate(gen)

    def _on_client_failed(self, request_id: int, message: str) -> None:
        if self._ours(request_id):
            self._finish("error", {}, error=message)

    def _on_client_engine_crashed(self, _stderr_tail: str) -> None:
        self._finish("interrupted", {})

    def _on_client_loaded(self, info: dict[str, Any]) -> None:
        self._model_name = str(info.get("name") or "")

    def _on_view_regenerate_requested(self, message_id: Any) -> None:
        self.regenerate(message_id)


@dataclass(frozen=True)
class _Row:
    """A search result shown in the conversation list."""

    id: Any
    title: str
    snippet: str = ""
