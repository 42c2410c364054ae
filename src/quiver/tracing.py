"""Optional OpenTelemetry: one `quiver.call` span per downstream tool call.

The MCP SDK already traces its own messages: its server opens a span per upward request,
parented on the `traceparent` / `tracestate` keys of the request's `_meta`, and its client
opens one per downstream request and injects the current context into that request's `_meta`.
Quiver's span sits between the two, so a trace reads client → upward request → `quiver.call`
(backend, tool, outcome) → downstream request → the backend's own spans. Without
`opentelemetry-api`, or with tracing off, `call_span` costs one attribute check.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextvars import Token
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

import mcp_types as types

from quiver.errors import sole_error
from quiver.metrics import CANCELLED, TOOL_ERROR, error_outcome, result_outcome

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["SPAN_NAME", "CallSpan", "Tracing", "build_provider", "configure_tracing"]

logger = logging.getLogger(__name__)

SPAN_NAME = "quiver.call"
SERVICE_NAME = "quiver"
_EMPTY: Mapping[str, str] = MappingProxyType({})


class CallSpan:
    """What `Tracing.call_span` yields: the `_meta` keys for the downstream request, and its outcome.

    This base is the no-op used when tracing is off; `meta` is then empty."""

    __slots__ = ()

    @property
    def meta(self) -> Mapping[str, str]:
        """`traceparent` (and `tracestate`) naming this span, to add to the downstream request's `_meta`.

        The SDK's client adds them to every request it sends by itself; this is for other paths."""
        return _EMPTY

    def set_result(self, result: types.Result) -> None:
        """The call returned `result` (an `isError` result marks the span as failed)."""

    def __enter__(self) -> CallSpan:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        return None


_NO_SPAN = CallSpan()  # stateless, so one serves every call


class Tracing:
    """Spans for downstream calls, if asked for and OpenTelemetry is installed.

    Spans go to `provider` if given (tests), else to the process's global tracer provider
    (see `configure_tracing`)."""

    def __init__(self, enabled: bool = False, *, provider: TracerProvider | None = None) -> None:
        self._tracer: Tracer | None = _tracer(provider) if enabled else None

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def call_span(
        self, backend: str, tool: str, parent_meta: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[CallSpan]:
        """A span for calling `backend`'s `tool`, current while the `with` block runs.

        Its parent is the current span (the SDK's span of the upward request, itself the
        client's child); where none is current, the trace context in `parent_meta` (an upward
        request's `_meta`), if any. The outcome is taken from the exception the block raises,
        or from the result given to `set_result`."""
        if self._tracer is None:
            return _NO_SPAN
        return _LiveSpan(self._tracer, backend, tool, parent_meta)


class _LiveSpan(CallSpan):
    __slots__ = ("_attributes", "_context", "_outcome", "_parent_meta", "_span", "_token", "_tracer")

    def __init__(self, tracer: Tracer, backend: str, tool: str, parent_meta: Mapping[str, Any] | None) -> None:
        self._tracer = tracer
        self._parent_meta = parent_meta
        self._attributes = {
            "quiver.backend": backend,
            "quiver.tool": tool,
            "mcp.method.name": "tools/call",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
        }
        self._outcome = "ok"
        self._span: Span | None = None
        self._context: Context | None = None
        self._token: Token[Context] | None = None

    def __enter__(self) -> CallSpan:
        from opentelemetry import context, trace

        parent = None
        if self._parent_meta and not trace.get_current_span().get_span_context().is_valid:
            parent = _extract(self._parent_meta)
        span = self._span = self._tracer.start_span(
            SPAN_NAME, context=parent, kind=trace.SpanKind.INTERNAL, attributes=self._attributes
        )
        self._context = trace.set_span_in_context(span, parent)
        self._token = context.attach(self._context)
        return self

    @property
    def meta(self) -> Mapping[str, str]:
        from opentelemetry import propagate

        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=self._context)
        return carrier

    def set_result(self, result: types.Result) -> None:
        self._outcome = result_outcome(result)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        from opentelemetry import context
        from opentelemetry.trace import StatusCode

        span, token = self._span, self._token
        assert span is not None
        assert token is not None
        try:
            if exc is not None:
                outcome, code = error_outcome(exc)
                if outcome != CANCELLED:
                    cause = sole_error(exc)  # a Quiver error's message is meant for users; others say only their type
                    span.set_attribute("error.type", code or type(cause).__qualname__)
                    span.set_status(StatusCode.ERROR, getattr(cause, "message", None) or type(cause).__name__)
            else:
                outcome = self._outcome
                if outcome == TOOL_ERROR:
                    span.set_attribute("error.type", TOOL_ERROR)
                    span.set_status(StatusCode.ERROR)
            span.set_attribute("quiver.outcome", outcome)
        finally:
            context.detach(token)
            span.end()


def _tracer(provider: TracerProvider | None) -> Tracer | None:
    try:
        from opentelemetry import trace
    except ImportError:
        logger.warning("tracing is on, but opentelemetry-api is not installed (pip install 'mcp-quiver[otel]')")
        return None
    from quiver import __version__

    return trace.get_tracer("quiver", __version__, tracer_provider=provider)


def _extract(meta: Mapping[str, Any]) -> Any:
    """The trace context in a request's `_meta`, or None when it names no valid span."""
    from opentelemetry import propagate, trace

    try:
        extracted = propagate.extract(dict(meta))
    except (TypeError, ValueError):
        return None
    return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


# -- exporting ----------------------------------------------------------------------------------


def configure_tracing(environ: Mapping[str, str] = os.environ) -> bool:
    """Export spans as the standard `OTEL_*` variables say, unless the process already set up its own.

    Needs `opentelemetry-sdk` (the `otel` extra). Returns whether a tracer provider was installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        logger.warning("tracing is on, but opentelemetry-api is not installed (pip install 'mcp-quiver[otel]')")
        return False
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False  # an embedding application (or opentelemetry-instrument) configured tracing already
    provider = build_provider(environ)
    if provider is None:
        return False
    trace.set_tracer_provider(provider)
    return True


def build_provider(environ: Mapping[str, str] = os.environ) -> SdkTracerProvider | None:
    """An SDK tracer provider exporting to what `OTEL_TRACES_EXPORTER` names (default `otlp`).

    `otlp` needs `opentelemetry-exporter-otlp-proto-http` (or `-grpc`) and reads the usual
    `OTEL_EXPORTER_OTLP_*` variables; `console` writes spans to stderr (stdout may be the MCP
    stream); `none` exports nothing. The service name is `OTEL_SERVICE_NAME`, else `quiver`."""
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE_NAME_KEY
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        logger.warning("tracing is on, but opentelemetry-sdk is not installed (pip install 'mcp-quiver[otel]')")
        return None
    names = [name.strip() for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    if not names or names == ["none"]:
        return None
    resource = Resource.create({SERVICE_NAME_KEY: environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    for name in names:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
            continue
        exporter = _exporter(name, environ)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    """A span exporter registered under `name` (`otlp` picks the OTLP exporter the protocol asks for)."""
    from importlib.metadata import entry_points

    candidates = [name]
    if name == "otlp":
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        candidates = ["otlp_proto_grpc"] if protocol == "grpc" else ["otlp_proto_http", "otlp_proto_grpc"]
    found = {point.name: point for point in entry_points(group="opentelemetry_traces_exporter")}
    for candidate in candidates:
        if candidate in found:
            return found[candidate].load()()
    logger.warning("no span exporter '%s' is installed, so spans are not exported (see docs/OPERATIONS.md)", name)
    return None
