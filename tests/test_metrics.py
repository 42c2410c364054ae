"""Metrics: the call hooks, the scrape-time collector over a gateway, the cardinality cap, `/metrics`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route

from quiver import tokens
from quiver.backends.base import BackendState, Listing
from quiver.config import QuiverConfig
from quiver.errors import BackendCallError, BackendUnavailableError, BusyError, CallTimeoutError, QuiverError
from quiver.gateway import Gateway
from quiver.metatools import INSTRUCTIONS, MetaTools
from quiver.metrics import OTHER_TOOL, Metrics, error_outcome, metrics_endpoint, result_outcome
from tests.fakes import FakeWorld, tool, wait_until

pytestmark = pytest.mark.anyio

Labels = frozenset[tuple[str, str]]


def scrape(metrics: Metrics) -> dict[tuple[str, Labels], float]:
    """Every sample of a scrape, by (sample name, labels), parsed back from the text format."""
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Mapping[tuple[str, Labels], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def make(world: FakeWorld, **backends: dict[str, Any]) -> Gateway:
    config = QuiverConfig.model_validate(
        {"backends": {name: {"command": "fake", **spec} for name, spec in backends.items()}}
    )
    for name in backends:
        world.tools.setdefault(name, [tool("echo", "Echo a message", ("message",), message="string")])
    return Gateway(config, backend_factory=world.factory)


# -- hooks --------------------------------------------------------------------------------------


def test_calls_are_counted_and_timed_by_backend_tool_and_outcome() -> None:
    metrics = Metrics(process=False)
    metrics.observe_call("git", "status", "ok", 0.003)
    metrics.observe_call("git", "status", "ok", 0.2)
    metrics.observe_call("git", "status", "tool_error", 0.004)
    metrics.observe_call("git", "log", "timeout", 120.5, code="timeout")
    samples = scrape(metrics)
    assert sample(samples, "quiver_calls_total", backend="git", tool="status", outcome="ok") == 2
    assert sample(samples, "quiver_calls_total", backend="git", tool="status", outcome="tool_error") == 1
    assert sample(samples, "quiver_calls_total", backend="git", tool="log", outcome="timeout") == 1
    assert sample(samples, "quiver_call_errors_total", backend="git", code="timeout") == 1
    assert sample(samples, "quiver_call_errors_total", backend="git", code="tool_error") is None
    status = {"backend": "git", "tool": "status"}
    assert sample(samples, "quiver_call_duration_seconds_bucket", le="0.0025", **status) == 0
    assert sample(samples, "quiver_call_duration_seconds_bucket", le="0.005", **status) == 2
    assert sample(samples, "quiver_call_duration_seconds_bucket", le="0.25", **status) == 3
    assert sample(samples, "quiver_call_duration_seconds_bucket", le="+Inf", **status) == 3
    assert sample(samples, "quiver_call_duration_seconds_count", **status) == 3
    assert sample(samples, "quiver_call_duration_seconds_sum", **status) == pytest.approx(0.207)
    log = {"backend": "git", "tool": "log"}
    assert sample(samples, "quiver_call_duration_seconds_bucket", le="120.0", **log) == 0
    assert sample(samples, "quiver_call_duration_seconds_bucket", le="+Inf", **log) == 1


def test_bucket_bounds_are_inclusive() -> None:
    metrics = Metrics(process=False)
    metrics.observe_call("a", "t", "ok", 0.001)
    metrics.observe_search(0.0005)
    samples = scrape(metrics)
    assert sample(samples, "quiver_call_duration_seconds_bucket", backend="a", tool="t", le="0.001") == 1
    assert sample(samples, "quiver_search_duration_seconds_bucket", le="0.0005") == 1


def test_in_flight_follows_started_and_finished() -> None:
    metrics = Metrics(process=False)
    metrics.call_started("a")
    metrics.call_started("a")
    metrics.call_started("b")
    metrics.call_finished("a")
    samples = scrape(metrics)
    assert sample(samples, "quiver_calls_in_flight", backend="a") == 1
    assert sample(samples, "quiver_calls_in_flight", backend="b") == 1


def test_search_durations() -> None:
    metrics = Metrics(process=False)
    metrics.observe_search(0.004)
    metrics.observe_search(3.0)
    samples = scrape(metrics)
    assert sample(samples, "quiver_search_duration_seconds_bucket", le="0.005") == 1
    assert sample(samples, "quiver_search_duration_seconds_bucket", le="5.0") == 2
    assert sample(samples, "quiver_search_duration_seconds_count") == 2


def ok() -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text="fine")])


@pytest.mark.parametrize(
    ("error", "outcome", "code"),
    [
        (CallTimeoutError("slow"), "timeout", "timeout"),
        (BusyError("full"), "busy", "busy"),
        (BackendUnavailableError("down"), "unavailable", "backend_unavailable"),
        (BackendCallError("died", lost=True), "error", "backend_failed"),
        (QuiverError("something else"), "error", "error"),
        (RuntimeError("a bug"), "error", "internal"),
        (ExceptionGroup("wrapped", [CallTimeoutError("slow")]), "timeout", "timeout"),
    ],
)
def test_errors_map_to_an_outcome_and_a_code(error: Exception, outcome: str, code: str) -> None:
    assert error_outcome(error) == (outcome, code)


async def test_a_cancelled_call_is_no_error() -> None:
    seen: list[tuple[str, str | None]] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.sleep(1)
        except anyio.get_cancelled_exc_class() as exc:
            seen.append(error_outcome(exc))
            raise
    assert seen == [("cancelled", None)]


def test_result_outcomes() -> None:
    assert result_outcome(ok()) == "ok"
    assert result_outcome(types.CallToolResult(content=[], is_error=True)) == "tool_error"


def test_track_call_runs_every_hook() -> None:
    metrics = Metrics(process=False)
    with metrics.track_call("a", "t") as timer:
        assert sample(scrape(metrics), "quiver_calls_in_flight", backend="a") == 1
        timer.set_result(types.CallToolResult(content=[], is_error=True))
    with pytest.raises(CallTimeoutError), metrics.track_call("a", "t"):
        raise CallTimeoutError("slow")
    with metrics.track_call("a", "t") as timer:
        timer.set_result(ok())
    samples = scrape(metrics)
    assert sample(samples, "quiver_calls_in_flight", backend="a") == 0
    assert sample(samples, "quiver_calls_total", backend="a", tool="t", outcome="tool_error") == 1
    assert sample(samples, "quiver_calls_total", backend="a", tool="t", outcome="timeout") == 1
    assert sample(samples, "quiver_calls_total", backend="a", tool="t", outcome="ok") == 1
    assert sample(samples, "quiver_call_errors_total", backend="a", code="timeout") == 1
    assert sample(samples, "quiver_call_duration_seconds_count", backend="a", tool="t") == 3


def test_hooks_cost_microseconds() -> None:
    """A generous bound (typically ~0.3 µs); `bench/metrics_bench.py` measures it properly."""
    metrics = Metrics(process=False)
    calls = 20_000
    started = time.perf_counter()
    for i in range(calls):
        backend, name = f"b{i % 5}", f"t{i % 20}"
        metrics.call_started(backend)
        metrics.observe_call(backend, name, "ok", 0.01)
        metrics.call_finished(backend)
    per_call = (time.perf_counter() - started) / calls
    assert per_call < 25e-6


# -- cardinality --------------------------------------------------------------------------------


def test_tool_labels_are_capped_per_backend() -> None:
    metrics = Metrics(max_tools=2, process=False)
    for name in ("t1", "t2", "t3", "t4", "t1"):
        metrics.observe_call("a", name, "ok", 0.01)
    metrics.observe_call("b", "t3", "ok", 0.01)  # the cap is per backend
    samples = scrape(metrics)
    assert sample(samples, "quiver_calls_total", backend="a", tool="t1", outcome="ok") == 2
    assert sample(samples, "quiver_calls_total", backend="a", tool="t2", outcome="ok") == 1
    assert sample(samples, "quiver_calls_total", backend="a", tool=OTHER_TOOL, outcome="ok") == 2
    assert sample(samples, "quiver_calls_total", backend="a", tool="t3", outcome="ok") is None
    assert sample(samples, "quiver_calls_total", backend="b", tool="t3", outcome="ok") == 1
    assert sample(samples, "quiver_call_duration_seconds_count", backend="a", tool=OTHER_TOOL) == 2


async def test_only_tools_the_catalog_knows_get_a_label() -> None:
    world = FakeWorld()
    gateway = make(world, a={})
    metrics = Metrics(process=False)
    metrics.collect_from(gateway)
    async with gateway.running():
        await gateway.call("a.echo", {"message": "hi"})  # lists the backend's tools
        metrics.observe_call("a", "echo", "ok", 0.01)
        metrics.observe_call("a", "made-up", "error", 0.01, code="backend_failed")
        samples = scrape(metrics)
        assert sample(samples, "quiver_calls_total", backend="a", tool="echo", outcome="ok") == 1
        assert sample(samples, "quiver_calls_total", backend="a", tool=OTHER_TOOL, outcome="error") == 1
        # A tool that appears later gets its own label from then on.
        gateway.catalog.update("a", Listing([*world.tools["a"], tool("made-up")]))
        metrics.observe_call("a", "made-up", "error", 0.01, code="backend_failed")
        samples = scrape(metrics)
        assert sample(samples, "quiver_calls_total", backend="a", tool="made-up", outcome="error") == 1
        assert sample(samples, "quiver_calls_total", backend="a", tool=OTHER_TOOL, outcome="error") == 1


# -- read from the gateway when scraped ---------------------------------------------------------


async def test_backend_states_restarts_and_breakers_are_read_when_scraped() -> None:
    world = FakeWorld()
    world.start_error["broken"] = RuntimeError("no such thing")
    gateway = make(world, up={}, idle={}, broken={"breaker_threshold": 1})
    metrics = Metrics(process=False)
    metrics.collect_from(gateway)
    async with gateway.running():
        await gateway.call("up.echo", {"message": "one"})
        world.live["up"].die()
        await wait_until(lambda: gateway.supervisor.get("up").state is BackendState.FAILED)
        await gateway.call("up.echo", {"message": "two"})
        with pytest.raises(BackendUnavailableError):
            await gateway.call("broken.echo", {"message": "x"})
        samples = scrape(metrics)
    for state in BackendState:
        assert sample(samples, "quiver_backend_state", backend="up", state=state.value) == (state == "running")
        assert sample(samples, "quiver_backend_state", backend="idle", state=state.value) == (state == "configured")
        assert sample(samples, "quiver_backend_state", backend="broken", state=state.value) == (state == "failed")
    assert sample(samples, "quiver_backend_restarts_total", backend="up") == 1
    assert sample(samples, "quiver_backend_restarts_total", backend="idle") == 0
    assert sample(samples, "quiver_breaker_state", backend="up") == 0
    assert sample(samples, "quiver_breaker_state", backend="broken") == 2


async def test_catalog_size_and_context_tokens_saved() -> None:
    world = FakeWorld()
    world.tools["big"] = [
        tool(f"tool_{i}", f"Does thing number {i} to a file", ("path",), path="string") for i in range(40)
    ]
    gateway = make(world, a={}, big={})
    metrics = Metrics(process=False)
    metrics.collect_from(gateway)
    async with gateway.running():
        for name in ("a", "big"):
            await gateway.supervisor.get(name).ensure_running()
        samples = scrape(metrics)
    every_tool = [*world.tools["a"], *world.tools["big"]]
    surface = tokens.tools_list_tokens(MetaTools().definitions, INSTRUCTIONS)
    assert sample(samples, "quiver_catalog_tools") == 41
    saved = sample(samples, "quiver_context_tokens_saved")
    assert saved == tokens.tools_list_tokens(every_tool) - surface
    assert saved is not None
    assert saved > 0


async def test_tokens_are_recounted_only_when_the_catalog_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[int] = []
    real = tokens.tools_list_tokens

    def counting(tools: Any, instructions: str | None = None) -> int:
        counted.append(len(tools))
        return real(tools, instructions)

    monkeypatch.setattr(tokens, "tools_list_tokens", counting)
    world = FakeWorld()
    gateway = make(world, a={})
    metrics = Metrics(process=False)
    metrics.collect_from(gateway)
    async with gateway.running():
        await gateway.supervisor.get("a").ensure_running()
        scrape(metrics)
        scrape(metrics)
        assert counted == [1, len(MetaTools().definitions)]  # the catalog once, the meta surface once
        gateway.catalog.update("a", Listing([*world.tools["a"], tool("more")]))
        scrape(metrics)
        assert counted[2:] == [2]


async def test_a_second_gateway_replaces_the_first() -> None:
    first, second = make(FakeWorld(), first={}), make(FakeWorld(), second={})
    metrics = Metrics(process=False)
    async with first.running(), second.running():
        metrics.collect_from(first)
        metrics.collect_from(second)
        samples = scrape(metrics)
    assert sample(samples, "quiver_backend_state", backend="second", state="configured") == 1
    assert sample(samples, "quiver_backend_state", backend="first", state="configured") is None


def test_several_metrics_in_one_process_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    first.observe_call("a", "t", "ok", 0.01)
    assert sample(scrape(first), "quiver_calls_total", backend="a", tool="t", outcome="ok") == 1
    assert sample(scrape(second), "quiver_calls_total", backend="a", tool="t", outcome="ok") is None
    assert any(name == "python_info" for name, _ in scrape(second))  # process and runtime metrics too


# -- /metrics -----------------------------------------------------------------------------------


async def test_metrics_endpoint_serves_the_text_format() -> None:
    world = FakeWorld()
    gateway = make(world, a={})
    metrics = Metrics()
    metrics.collect_from(gateway)
    metrics.observe_call("a", "echo", "ok", 0.02)
    app = Starlette(routes=[Route("/metrics", endpoint=metrics_endpoint(metrics), methods=["GET"])])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://quiver") as client:
        response = await client.get("/metrics")
        openmetrics = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert {
        "quiver_calls",
        "quiver_call_errors",
        "quiver_call_duration_seconds",
        "quiver_calls_in_flight",
        "quiver_search_duration_seconds",
        "quiver_backend_state",
        "quiver_backend_restarts",
        "quiver_breaker_state",
        "quiver_catalog_tools",
        "quiver_context_tokens_saved",
    } <= set(families)
    assert families["quiver_calls"].type == "counter"
    assert families["quiver_call_duration_seconds"].type == "histogram"
    assert families["quiver_backend_state"].type == "gauge"
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
