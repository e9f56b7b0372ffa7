"""Fixtures shared by the Qt tests."""

import pytest  # noqa: E402 - after the fixture re-export above

from app.services.engine_client import EngineClient  # noqa: E402
from tests.fixtures.window import window_env  # noqa: F401 - the fixture


@pytest.fixture()
def client(qtbot):
    """A real EngineClient; its hosts are gone when the test ends."""
    c = EngineClient()
    yield c
    c.shutdown()
    assert c.wait_closed()
