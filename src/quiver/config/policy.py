"""Config for what passes through: access rules, roles, limits, redaction, scanning, authentication.

Everything here is optional: with no `policy:` section every tool is visible and callable, and
with no `auth:` section `quiver serve` accepts connections from this machine only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["low", "medium", "high"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Limits(_Strict):
    """Caps on one tool result; a capped result says so and how to read the rest."""

    max_result_bytes: int | None = Field(default=None, gt=0)
    max_result_tokens: int | None = Field(default=None, gt=0)


class RateLimit(_Strict):
    calls_per_minute: float = Field(gt=0)
    burst: int | None = Field(default=None, gt=0, description="Calls allowed at once; default: one minute's worth.")


class Rules(_Strict):
    """Which tools are visible and callable. Patterns are globs on tool ids (`backend.tool`)."""

    allow: list[str] = Field(default_factory=lambda: ["*"])
    deny: list[str] = Field(default_factory=list)
    read_only: bool = Field(default=False, description="Admit only tools that declare readOnlyHint.")


class Role(Rules):
    limits: Limits = Field(default_factory=Limits)
    rate_limit: RateLimit | None = None


class Redaction(_Strict):
    builtin: bool = Field(default=True, description="Cloud keys, tokens, private keys, JWTs, passwords in URLs.")
    patterns: list[str] = Field(default_factory=list, description="Extra regular expressions to mask.")


class Scanning(_Strict):
    enabled: bool = True
    quarantine: Severity = Field(default="high", description="Findings at or above this hide the tool until approved.")


class PolicyConfig(Rules):
    """The gateway-wide rules; a role's rules apply on top (both must admit a tool)."""

    limits: Limits = Field(default_factory=Limits)
    rate_limit: RateLimit | None = None
    roles: dict[str, Role] = Field(default_factory=dict)
    default_role: str | None = Field(default=None, description="Role of callers that present no credentials.")
    redaction: Redaction = Field(default_factory=Redaction)
    scanning: Scanning = Field(default_factory=Scanning)
    pinning: bool = Field(default=True, description="Quarantine a tool whose definition changed since approval.")
    audit: bool = Field(default=True, description="Record every call in the audit database.")


class OAuthConfig(_Strict):
    """OAuth 2.1 resource-server mode: bearer JWTs checked against the issuer's keys."""

    issuer: str
    jwks_url: str | None = Field(default=None, description="Default: the issuer's /.well-known/jwks.json.")
    audience: str | None = None
    required_scopes: list[str] = Field(default_factory=list)
    resource_url: str | None = Field(default=None, description="This gateway's public URL, for the metadata.")
    role_claim: str = Field(default="quiver_role", description="JWT claim naming the caller's role.")


class AuthConfig(_Strict):
    api_keys: bool = Field(default=False, description="Accept keys created with `quiver keys create`.")
    oauth: OAuthConfig | None = None

    @property
    def enabled(self) -> bool:
        return self.api_keys or self.oauth is not None
