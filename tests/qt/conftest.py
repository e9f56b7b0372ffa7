"""Fixtures shared by the Qt tests."""

from tests.fixtures.window import window_env  # noqa: F401 - the fixture
