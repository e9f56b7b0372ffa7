"""The widget tests' FakeEngineClient is held to EngineClient's interface: same signals with the same
argument types, and the methods the window calls with the same parameters."""

from __future__ import annotations

import inspect

from PySide6.QtCore import QMetaMethod

from app.services.engine_client import EngineClient
from tests.qt.screenshots import FakeEngineClient


def _signals(cls: type) -> set[str]:
    meta = cls.staticMetaObject  # type: ignore[attr-defined]
    out = set()
    for i in range(meta.methodOffset(), meta.methodCount()):
        method = meta.method(i)
        name = bytes(method.name()).decode()
        if method.methodType() == QMetaMethod.MethodType.Signal and not name.startswith("_"):
            out.add(bytes(method.methodSignature()).decode())
    return out


def test_fake_has_the_real_clients_signals():
    assert _signals(FakeEngineClient) == _signals(EngineClient)


def test_fake_has_the_methods_the_window_calls_with_the_same_parameters():
    for name in ("generate", "stop", "restart", "shutdown"):
        real = inspect.signature(getattr(EngineClient, name))
        fake = inspect.signature(getattr(FakeEngineClient, name))
        assert list(real.parameters)[:len(fake.parameters)] == list(fake.parameters), name
    real, fake = EngineClient(), FakeEngineClient()
    for name in ("busy", "model", "model_info", "reply", "remote"):
        assert hasattr(real, name) and hasattr(fake, name), name
