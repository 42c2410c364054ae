"""Pure access decisions: may this role see (and so call) this tool, resource or prompt?

Matching rules, in one place:

- Patterns are shell-style globs (`*`, `?`, `[...]`) matched case-sensitively against ids:
  `backend.tool` for tools, `backend.prompt` for prompts, `backend.<uri>` for resources.
  `github.*` is a whole backend; `*.delete_*` a kind of tool everywhere.
- A thing is visible when the gateway-wide rules admit it AND the caller's role admits it.
- Within one set of rules, deny wins: a match on any `deny` pattern hides it whatever `allow` says;
  otherwise it must match some `allow` pattern (the default `allow` is `["*"]`).
- `read_only` admits only tools that declare `readOnlyHint: true`.
- A quarantined tool (a poisoning finding, or a definition changed since approval) is hidden from
  every role until an operator approves it.

Hidden means absent: not listed, not searchable, not describable, not callable, never suggested.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import mcp_types as types

from quiver.config.policy import Limits, PolicyConfig, RateLimit, Rules
from quiver.errors import ConfigError

# Decisions are cached per id; a catalogue of many thousand tools stays well within this.
_CACHE_SIZE = 1 << 16


@lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))


@dataclass(frozen=True)
class _RuleSet:
    allow: re.Pattern[str] | None
    deny: re.Pattern[str] | None
    read_only: bool

    @classmethod
    def of(cls, rules: Rules) -> _RuleSet:
        return cls(_compiled(tuple(rules.allow)), _compiled(tuple(rules.deny)), rules.read_only)

    def admits(self, key: str) -> bool:
        if self.deny is not None and self.deny.match(key):
            return False
        return self.allow is not None and self.allow.match(key) is not None


@dataclass
class View:
    """What one role may see. Cheap to ask repeatedly: answers are cached per id."""

    role: str | None
    rules: tuple[_RuleSet, ...]
    limits: Limits
    rate_limit: RateLimit | None
    quarantined: Callable[[str], bool] = lambda tool_id: False
    _cache: dict[str, bool] = field(default_factory=dict, repr=False)

    def admits(self, key: str) -> bool:
        """Whether the rules admit an id (tool, `backend.prompt` or `backend.<uri>`), ignoring hints."""
        cached = self._cache.get(key)
        if cached is None:
            cached = all(rule.admits(key) for rule in self.rules)
            if len(self._cache) < _CACHE_SIZE:
                self._cache[key] = cached
        return cached

    def allows_tool(self, tool_id: str, tool: types.Tool | None) -> bool:
        if not self.admits(tool_id) or self.quarantined(tool_id):
            return False
        if any(rule.read_only for rule in self.rules):
            return tool is not None and bool(tool.annotations and tool.annotations.read_only_hint)
        return True

    def allows_backend_item(self, backend: str, name: str) -> bool:
        """A prompt (by name) or resource (by URI) of `backend`."""
        return self.admits(f"{backend}.{name}")


class Policy:
    """The configured rules, and one `View` per role."""

    def __init__(self, config: PolicyConfig, *, quarantined: Callable[[str], bool] | None = None) -> None:
        self.config = config
        self._quarantined = quarantined or (lambda tool_id: False)
        self._gateway = _RuleSet.of(config)
        self._views: dict[str | None, View] = {}
        if config.default_role is not None and config.default_role not in config.roles:
            raise ConfigError(
                f"policy.default_role names role '{config.default_role}', which is not defined",
                hint=f"define it under policy.roles, or use one of: {', '.join(config.roles) or '(none)'}",
            )

    def roles(self) -> Sequence[str]:
        return list(self.config.roles)

    def view(self, role: str | None) -> View:
        """The view of `role` (None: the default role, or the gateway-wide rules alone)."""
        if role is None:
            role = self.config.default_role
        view = self._views.get(role)
        if view is None:
            view = self._views[role] = self._build(role)
        return view

    def _build(self, role: str | None) -> View:
        if role is None:
            return View(None, (self._gateway,), self.config.limits, self.config.rate_limit, self._quarantined)
        definition = self.config.roles.get(role)
        if definition is None:  # an unknown role sees nothing rather than everything
            nothing = _RuleSet(None, None, False)
            return View(role, (nothing,), self.config.limits, self.config.rate_limit, self._quarantined)
        limits = Limits(
            max_result_bytes=definition.limits.max_result_bytes or self.config.limits.max_result_bytes,
            max_result_tokens=definition.limits.max_result_tokens or self.config.limits.max_result_tokens,
        )
        return View(
            role,
            (self._gateway, _RuleSet.of(definition)),
            limits,
            definition.rate_limit or self.config.rate_limit,
            self._quarantined,
        )

    def invalidate(self) -> None:
        """Forget cached answers (after quarantine or approvals change)."""
        for view in self._views.values():
            view._cache.clear()
