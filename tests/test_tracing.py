"""Tracing: a `quiver.call` span per downstream call, its parent, and the trace context sent downstream."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from quiver.errors import CallTimeoutError
from quiver.tracing import SPAN_NAME, Tracing, build_provider, configure_tracing

pytestmark = pytest.mark.anyio

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = [span for span in exporter.get_finished_spans() if span.name == SPAN_NAME]
    assert len(spans) == 1
    return spans[0]


def ids(traceparent: str) -> tuple[str, str]:
    """(trace id, span id) of a W3C `traceparent` header value."""
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id


def ok() -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text="fine")])


# -- the span ------------------------------------------------------------------------------------


def test_a_span_per_call_with_backend_tool_and_outcome(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(True, provider=provider)
    assert tracing.enabled
    with tracing.call_span("git", "status") as span:
        span.set_result(ok())
    finished = only_span(exporter)
    assert finished.kind is trace.SpanKind.INTERNAL
    assert finished.attributes is not None
    assert finished.attributes["quiver.backend"] == "git"
    assert finished.attributes["quiver.tool"] == "status"
    assert finished.attributes["quiver.outcome"] == "ok"
    assert finished.attributes["gen_ai.tool.name"] == "status"
    assert finished.status.status_code is StatusCode.UNSET
    assert finished.parent is None


def test_a_tool_error_marks_the_span_failed(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with Tracing(True, provider=provider).call_span("git", "status") as span:
        span.set_result(types.CallToolResult(content=[], is_error=True))
    finished = only_span(exporter)
    assert finished.attributes is not None
    assert finished.attributes["quiver.outcome"] == "tool_error"
    assert finished.attributes["error.type"] == "tool_error"
    assert finished.status.status_code is StatusCode.ERROR


def test_an_error_sets_outcome_code_and_status(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with pytest.raises(CallTimeoutError), Tracing(True, provider=provider).call_span("git", "log"):
        raise CallTimeoutError("the call to 'log' did not answer within 1s")
    finished = only_span(exporter)
    assert finished.attributes is not None
    assert finished.attributes["quiver.outcome"] == "timeout"
    assert finished.attributes["error.type"] == "timeout"
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "the call to 'log' did not answer within 1s"


def test_an_unexpected_error_reports_only_its_type(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with pytest.raises(KeyError), Tracing(True, provider=provider).call_span("git", "log"):
        raise KeyError("/home/someone/.secret")
    finished = only_span(exporter)
    assert finished.attributes is not None
    assert finished.attributes["error.type"] == "internal"
    assert finished.status.description == "KeyError"


async def test_a_cancelled_call_is_not_an_error(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    tracing = Tracing(True, provider=provider)
    with anyio.CancelScope() as scope, tracing.call_span("git", "log"):
        scope.cancel()
        await anyio.sleep(1)
    finished = only_span(exporter)
    assert finished.attributes is not None
    assert finished.attributes["quiver.outcome"] == "cancelled"
    assert finished.status.status_code is StatusCode.UNSET


def test_the_span_is_current_and_named_in_the_meta_to_send(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with Tracing(True, provider=provider).call_span("git", "status") as span:
        current = trace.get_current_span().get_span_context()
        meta = dict(span.meta)
    assert not trace.get_current_span().get_span_context().is_valid  # detached afterwards
    finished = only_span(exporter)
    assert finished.context is not None
    assert current.span_id == finished.context.span_id
    assert ids(meta["traceparent"]) == (f"{finished.context.trace_id:032x}", f"{finished.context.span_id:016x}")


# -- the parent ----------------------------------------------------------------------------------


def test_the_parent_comes_from_the_upward_meta(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    upward = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "tracestate": "vendor=x", "progressToken": 3}
    with Tracing(True, provider=provider).call_span("git", "status", upward) as span:
        meta = dict(span.meta)
    finished = only_span(exporter)
    assert finished.parent is not None
    assert (f"{finished.parent.trace_id:032x}", f"{finished.parent.span_id:016x}") == (CLIENT_TRACE, CLIENT_SPAN)
    assert ids(meta["traceparent"])[0] == CLIENT_TRACE
    assert meta["tracestate"] == "vendor=x"


def test_a_current_span_wins_over_the_meta(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    upward = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
    tracing = Tracing(True, provider=provider)
    with (
        provider.get_tracer("test").start_as_current_span("upward request") as outer,
        tracing.call_span("git", "status", upward),
    ):
        pass
    finished = only_span(exporter)
    assert finished.parent is not None
    assert finished.parent.span_id == outer.get_span_context().span_id


@pytest.mark.parametrize("meta", [{}, {"traceparent": "garbage"}, {"traceparent": f"00-{'0' * 32}-{CLIENT_SPAN}-01"}])
def test_a_meta_without_a_valid_context_starts_a_trace(
    meta: dict[str, Any], provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with Tracing(True, provider=provider).call_span("git", "status", meta):
        pass
    assert only_span(exporter).parent is None


# -- through the MCP SDK -------------------------------------------------------------------------
# The SDK's client injects the current trace context into every request it sends over a stream
# (stdio, HTTP: how Quiver reaches backends). In process, only its legacy mode goes that way.


def recording_server(seen: list[dict[str, Any]], tracing: Tracing | None = None) -> Server[Any]:
    """One tool, `probe`: records the `_meta` it was called with (inside a call span, if given one)."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="probe", input_schema={"type": "object"})])

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        seen.append(dict(ctx.meta or {}))
        if tracing is not None:
            with tracing.call_span("downstream", "probe") as span:
                span.set_result(ok())
        return ok()

    return Server("recorder", on_list_tools=list_tools, on_call_tool=call_tool)


async def test_the_downstream_request_carries_the_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    seen: list[dict[str, Any]] = []
    tracing = Tracing(True, provider=provider)
    async with Client(recording_server(seen), cache=None, mode="legacy") as client:
        with tracing.call_span("recorder", "probe") as span:
            span.set_result(await client.call_tool("probe", {}))
    finished = only_span(exporter)
    assert finished.context is not None
    assert ids(seen[0]["traceparent"])[0] == f"{finished.context.trace_id:032x}"


async def test_the_span_is_a_child_of_the_upward_clients(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    seen: list[dict[str, Any]] = []
    async with Client(recording_server(seen, Tracing(True, provider=provider)), cache=None, mode="legacy") as client:
        with provider.get_tracer("client").start_as_current_span("client call") as client_span:
            await client.call_tool("probe", {})
    assert ids(seen[0]["traceparent"])[0] == f"{client_span.get_span_context().trace_id:032x}"
    finished = only_span(exporter)
    assert finished.parent is not None
    assert finished.parent.trace_id == client_span.get_span_context().trace_id


# -- off ----------------------------------------------------------------------------------------


def test_off_is_a_no_op(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    tracing = Tracing(False, provider=provider)
    assert not tracing.enabled
    upward = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
    with tracing.call_span("git", "status", upward) as span:
        span.set_result(ok())
        assert dict(span.meta) == {}
        assert not trace.get_current_span().get_span_context().is_valid
    with pytest.raises(CallTimeoutError), tracing.call_span("git", "status"):
        raise CallTimeoutError("slow")
    assert exporter.get_finished_spans() == ()


def test_without_opentelemetry_tracing_stays_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name == "opentelemetry" or name.startswith("opentelemetry.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    tracing = Tracing(True)
    assert not tracing.enabled
    with tracing.call_span("git", "status") as span:
        assert dict(span.meta) == {}
    assert not configure_tracing({"OTEL_TRACES_EXPORTER": "console"})


# -- exporting ----------------------------------------------------------------------------------


def test_exporters_follow_the_standard_variables(caplog: pytest.LogCaptureFixture) -> None:
    assert build_provider({"OTEL_TRACES_EXPORTER": "none"}) is None
    console = build_provider({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "gw"})
    assert console is not None
    assert console.resource.attributes["service.name"] == "gw"
    console.shutdown()
    otlp = build_provider({})  # OTLP by default, configured by OTEL_EXPORTER_OTLP_*; nothing is sent yet
    assert otlp is not None
    assert otlp.resource.attributes["service.name"] == "quiver"
    otlp.shutdown()
    assert "no span exporter" not in caplog.text  # the otel extra brings the OTLP exporter
    assert build_provider({"OTEL_TRACES_EXPORTER": "zipkin-or-so"}) is not None
    assert "no span exporter 'zipkin-or-so' is installed" in caplog.text


def test_configure_installs_a_provider_only_where_none_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: list[Any] = []
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    assert configure_tracing({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(installed[0], TracerProvider)
    installed[0].shutdown()
    assert not configure_tracing({"OTEL_TRACES_EXPORTER": "none"})
    own = TracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: own)
    assert not configure_tracing({"OTEL_TRACES_EXPORTER": "console"})
    assert len(installed) == 1
