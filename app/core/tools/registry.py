"""The tools the model may call: what each server offers, which are switched on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolSpec:
    """One tool as an MCP server describes it."""

    server: str
    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable id used by the settings (on/off switch, "always allow")."""
        return f"{self.server}/{self.name}"

    def declaration(self) -> dict[str, Any]:
        """The OpenAI-shaped entry of the chat template's ``tools`` argument."""
        schema = dict(self.input_schema) or {"type": "object", "properties": {}}
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": schema},
        }


class ToolRegistry:
    """Tools by the name the model uses; the first server to offer a name wins it."""

    def __init__(self, specs: Iterable[ToolSpec] = (), disabled: Iterable[str] = ()) -> None:
        self._specs: dict[str, ToolSpec] = {}
        self.disabled: set[str] = set(disabled)
        for spec in specs:
            self._specs.setdefault(spec.name, spec)

    def add(self, specs: Iterable[ToolSpec]) -> None:
        """Add a server's tools (names already taken keep their first owner)."""
        for spec in specs:
            self._specs.setdefault(spec.name, spec)

    def all(self) -> list[ToolSpec]:
        """Every known tool, enabled or not."""
        return list(self._specs.values())

    def enabled(self) -> list[ToolSpec]:
        """The tools the model is told about."""
        return [s for s in self._specs.values() if s.key not in self.disabled]

    def get(self, name: str) -> ToolSpec | None:
        """An enabled tool by the name the model calls it, or None."""
        spec = self._specs.get(name)
        return spec if spec is not None and spec.key not in self.disabled else None

    def declarations(self) -> list[dict[str, Any]]:
        """The chat template's ``tools`` argument for the enabled tools."""
        return [s.declaration() for s in self.enabled()]
