"""EngineConnection with more than one listener (the window's chat and its API server on one host):
a request that names its own listener is heard there only; Exited reaches every listener."""

from __future__ import annotations

import os
import queue
import signal
import time

from app.core.engine.connection import ClientEvent, Deltas, EngineConnection, Exited
from app.core.engine.messages import Done, Loaded, LoadModel, Ready, TokenList
from app.core.engine.records import SamplingParams

SHORT = SamplingParams(temperature=0.0, max_tokens=8)


def _until(events: queue.Queue[ClientEvent], wanted: type, timeout: float = 120.0) -> list[ClientEvent]:
    """Everything `events` received up to and including the first `wanted`."""
    got: list[ClientEvent] = []
    deadline = time.monotonic() + timeout
    while not got or not isinstance(got[-1], wanted):
        got.append(events.get(timeout=max(0.1, deadline - time.monotonic())))
    return got


def test_requests_with_their_own_listener_are_heard_only_there(model_270m):
    main: queue.Queue[ClientEvent] = queue.Queue()
    own: queue.Queue[ClientEvent] = queue.Queue()
    conn = EngineConnection(main.put)
    conn.start()
    try:
        _until(main, Ready)
        conn.load(LoadModel(str(model_270m), None, 1024, 0, 2))
        _until(main, Loaded)
        routed = conn.generate([], params=SHORT, prompt="Once upon a time", listener=own.put)
        plain = conn.generate([], params=SHORT, prompt="The sky is")
        own_events = _until(own, Done)
        main_events = _until(main, Done)
        assert {getattr(e, "id", None) for e in own_events} == {routed}
        assert {getattr(e, "id", None) for e in main_events} == {plain}
        assert any(isinstance(e, Deltas) for e in own_events)
        assert any(isinstance(e, Deltas) for e in main_events)

        tokens = conn.tokenize([{"role": "user", "content": "Hi"}], listener=own.put)
        listed = _until(own, TokenList)
        assert [e.id for e in listed if isinstance(e, TokenList)] == [tokens]
        assert main.empty()

        # A routed request still running when the host dies: its listener hears Exited too.
        conn.generate([], params=SamplingParams(max_tokens=5000), prompt="Once", listener=own.put)
        _until(own, Deltas)
        assert conn.pid is not None
        os.kill(conn.pid, signal.SIGKILL)
        assert not any(isinstance(e, Done) for e in _until(own, Exited, 30))
        assert isinstance(_until(main, Exited, 30)[-1], Exited)
    finally:
        conn.close()
        conn.join()
