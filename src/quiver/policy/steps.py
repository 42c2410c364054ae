"""The policy steps of the call pipeline (see `pipeline`): each small, each wrapping the next."""

from __future__ import annotations

import json
import time
from collections import Counter

import anyio
import mcp_types as types

from quiver.errors import QuiverError
from quiver.policy.audit import AuditLog, AuditRecord, fingerprint
from quiver.policy.limits import Continuations, cap_result
from quiver.policy.pipeline import CallNext, CallRequest, Result
from quiver.policy.ratelimit import RateLimitedError, RateLimiter
from quiver.policy.redaction import Redactor


def result_bytes(result: Result | None) -> int:
    if result is None:
        return 0
    return len(result.model_dump_json(by_alias=True, exclude_none=True))


class AuditStep:
    """Outermost: one audit row per call, whatever happened inside."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    async def __call__(self, request: CallRequest, call_next: CallNext) -> Result:
        started = time.perf_counter()
        outcome, code, result = "error", None, None
        try:
            result = await call_next()
            is_error = isinstance(result, types.CallToolResult) and result.is_error
            outcome = "tool_error" if is_error else "ok"
            return result
        except QuiverError as exc:
            code = exc.code
            raise
        except anyio.get_cancelled_exc_class():
            outcome = "cancelled"
            raise
        finally:
            args_digest, bytes_in = fingerprint(request.arguments)
            self.log.record(
                AuditRecord(
                    ts=time.time(),
                    principal=request.principal.name,
                    role=request.view.role,
                    tool=request.tool_id,
                    args_digest=args_digest,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    outcome=outcome,
                    error_code=code,
                    bytes_in=bytes_in,
                    bytes_out=result_bytes(result),
                    policy=json.dumps(request.actions) if request.actions else None,
                )
            )


class RateLimitStep:
    """Refuses a call beyond the caller's rate limit with a clear "retry after"."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def __call__(self, request: CallRequest, call_next: CallNext) -> Result:
        wait = self.limiter.check(request.principal)
        if wait is not None:
            request.actions["rate_limited"] = True
            raise RateLimitedError(request.principal.name, wait)
        return await call_next()


class LimitsStep:
    """Caps a result at the caller's byte/token limits; the rest waits behind a continuation handle."""

    def __init__(self, store: Continuations) -> None:
        self.store = store

    async def __call__(self, request: CallRequest, call_next: CallNext) -> Result:
        result = await call_next()
        limits = request.view.limits
        if not isinstance(result, types.CallToolResult) or not (limits.max_result_bytes or limits.max_result_tokens):
            return result
        outcome = cap_result(
            result,
            max_bytes=limits.max_result_bytes,
            max_tokens=limits.max_result_tokens,
            store=self.store,
            principal=request.principal.name,
        )
        if outcome.truncated:
            request.actions["truncated"] = outcome.to_dict()
        return outcome.result


class RedactionStep:
    """Masks secrets in what comes back, and says how many of which kind."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    async def __call__(self, request: CallRequest, call_next: CallNext) -> Result:
        result = await call_next()
        if not isinstance(result, types.CallToolResult):
            return result
        counts: Counter[str] = Counter()
        redacted, found = self.redactor.redact_result(result, counts)
        if found:
            request.actions["redacted"] = dict(counts)
        return redacted
