"""Prometheus metrics of one gateway, on a registry of its own.

Calls are counted by cheap hooks on the call path (`observe_call`, `call_started` /
`call_finished`, or `track_call` around a call; `observe_search`). What the gateway already
knows (backend states, restarts, breakers, the catalog) is read only when scraped, by the
collector `collect_from` registers, so the call path pays nothing for it. Tool label values are
bounded: only tools the catalog knows, at most `max_tools` of them per backend, any other
counted as `other`.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from itertools import accumulate
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import mcp_types as types
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from quiver.backends.base import BackendState
from quiver.backends.breaker import BreakerState
from quiver.errors import QuiverError, sole_error
from quiver.ids import ToolId

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

    from quiver.catalog import Catalog
    from quiver.gateway import Gateway

__all__ = [
    "CALL_BUCKETS",
    "MAX_TOOLS_PER_BACKEND",
    "OTHER_TOOL",
    "SEARCH_BUCKETS",
    "CallTimer",
    "Metrics",
    "MetricsEndpoint",
    "error_outcome",
    "metrics_endpoint",
    "result_outcome",
]

# A tool call takes from about a millisecond (an in-memory lookup) to the 120 s default timeout.
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# A search is a few milliseconds, or up to the discovery timeout when it waits for new backends.
SEARCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Enough for every tool of a large server (GitHub's has about 90); each costs ~20 series per outcome.
MAX_TOOLS_PER_BACKEND = 100
OTHER_TOOL = "other"
# Label lookups are memoised per (backend, tool, outcome); past this many, new ones are not kept.
_MAX_MEMO = 10_000

# Outcomes: ok, tool_error (the tool answered with isError), input_required (a 2026-07-28 round),
# timeout, busy, unavailable, rejected, error (the backend failed), cancelled (no error).
OK = "ok"
TOOL_ERROR = "tool_error"
INPUT_REQUIRED = "input_required"
ERROR = "error"
CANCELLED = "cancelled"
_OUTCOME_OF_CODE = {
    "timeout": "timeout",
    "busy": "busy",
    "backend_unavailable": "unavailable",  # could not be started, or its breaker is open: nothing was sent
    "backend_failed": ERROR,
    "cancelled": CANCELLED,
    "shutting_down": "rejected",
    "rate_limited": "rejected",
    "invalid_arguments": "rejected",
    "unknown_tool": "rejected",
    "unknown_backend": "rejected",
}
INTERNAL_CODE = "internal"  # an unexpected exception: a bug, reported without internals


def result_outcome(result: types.Result) -> str:
    """The outcome of a call that returned: `ok`, `tool_error` (`isError`) or `input_required`."""
    if isinstance(result, types.CallToolResult):
        return TOOL_ERROR if result.is_error else OK
    if isinstance(result, types.InputRequiredResult):
        return INPUT_REQUIRED
    return OK


def error_outcome(exc: BaseException) -> tuple[str, str | None]:
    """(outcome, error code) of a call that raised; the code is None when nothing failed (cancelled)."""
    exc = sole_error(exc)
    if _is_cancellation(exc):
        return CANCELLED, None
    if isinstance(exc, QuiverError):
        outcome = _OUTCOME_OF_CODE.get(exc.code, ERROR)
        return outcome, None if outcome == CANCELLED else exc.code
    return ERROR, INTERNAL_CODE


def _is_cancellation(exc: BaseException) -> bool:
    try:
        return isinstance(exc, anyio.get_cancelled_exc_class())
    except RuntimeError:  # no event loop: called from plain code (tests)
        return isinstance(exc, asyncio.CancelledError)


class _Histogram:
    """Bucket counts (the last one +Inf) and a sum; cumulated only when scraped."""

    __slots__ = ("counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0


class _CallSeries:
    """The counter of one (backend, tool label, outcome) and the histogram of its (backend, tool label)."""

    __slots__ = ("count", "duration")

    def __init__(self, duration: _Histogram) -> None:
        self.count = 0
        self.duration = duration


class Metrics:
    """The gateway's metrics, on `registry`.

    The hooks keep plain numbers that the registry turns into metrics when scraped: a hook is a
    dict lookup and a few additions (prometheus-client's own metric objects take a lock per
    update, several times the cost). Like the rest of the gateway's state, they are meant to be
    called from the event loop's thread. The registry (and prometheus-client with it) is built
    on the first scrape, so a gateway nobody scrapes does not load it."""

    def __init__(self, *, max_tools: int = MAX_TOOLS_PER_BACKEND, process: bool = True) -> None:
        self._registry: CollectorRegistry | None = None
        self._process = process
        self.max_tools = max_tools
        self._series: dict[tuple[str, str, str], _CallSeries] = {}  # by label values
        self._memo: dict[tuple[str, str, str], _CallSeries] = {}  # by (backend, tool name, outcome)
        self._durations: dict[tuple[str, str], _Histogram] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._in_flight: dict[str, int] = {}
        self._search = _Histogram(SEARCH_BUCKETS)
        self._labelled: dict[str, set[str]] = {}  # per backend, the tools that have a label of their own
        self._known: Callable[[str, str], bool] | None = None
        self._collector: _GatewayCollector | None = None

    @property
    def registry(self) -> CollectorRegistry:
        if self._registry is None:
            from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

            registry = self._registry = CollectorRegistry()
            registry.register(_CallCollector(self))
            if self._process:
                ProcessCollector(registry=registry)
                PlatformCollector(registry=registry)
                GCCollector(registry=registry)
            if self._collector is not None:
                registry.register(self._collector)
        return self._registry

    # -- hooks on the call path ----------------------------------------------------------------

    def observe_call(self, backend: str, tool: str, outcome: str, seconds: float, code: str | None = None) -> None:
        """Count one finished call; `code` (a failed call's error code) also counts it as an error."""
        series = self._memo.get((backend, tool, outcome))
        if series is None:
            series = self._new_series(backend, tool, outcome)
        series.count += 1
        duration = series.duration
        duration.counts[bisect_left(CALL_BUCKETS, seconds)] += 1
        duration.sum += seconds
        if code is not None:
            self._errors[backend, code] = self._errors.get((backend, code), 0) + 1

    def call_started(self, backend: str) -> None:
        self._in_flight[backend] = self._in_flight.get(backend, 0) + 1

    def call_finished(self, backend: str) -> None:
        self._in_flight[backend] = self._in_flight.get(backend, 0) - 1

    def track_call(self, backend: str, tool: str) -> CallTimer:
        """`with metrics.track_call(b, t) as timer: result = ...; timer.set_result(result)`: all hooks in one."""
        return CallTimer(self, backend, tool)

    def observe_search(self, seconds: float) -> None:
        self._search.counts[bisect_left(SEARCH_BUCKETS, seconds)] += 1
        self._search.sum += seconds

    def _new_series(self, backend: str, tool: str, outcome: str) -> _CallSeries:
        label, final = self._tool_label(backend, tool)
        series = self._series.get((backend, label, outcome))
        if series is None:
            duration = self._durations.get((backend, label))
            if duration is None:
                duration = self._durations[backend, label] = _Histogram(CALL_BUCKETS)
            series = self._series[backend, label, outcome] = _CallSeries(duration)
        if final and len(self._memo) < _MAX_MEMO:
            self._memo[backend, tool, outcome] = series
        return series

    def _tool_label(self, backend: str, tool: str) -> tuple[str, bool]:
        """The tool's label value, and whether it is final (a tool unknown now may become known)."""
        labelled = self._labelled.setdefault(backend, set())
        if tool in labelled:
            return tool, True
        if self._known is not None and not self._known(backend, tool):
            return OTHER_TOOL, False
        if len(labelled) >= self.max_tools:
            return OTHER_TOOL, True
        labelled.add(tool)
        return tool, True

    # -- read when scraped -----------------------------------------------------------------

    def collect_from(self, gateway: Gateway) -> None:
        """Report this gateway's backends and catalog at scrape time; tool labels follow its catalog."""
        catalog = gateway.catalog
        self._known = lambda backend, tool: catalog.get(str(ToolId(backend, tool))) is not None
        if self._collector is not None and self._registry is not None:
            self._registry.unregister(self._collector)
        self._collector = _GatewayCollector(gateway)
        if self._registry is not None:
            self._registry.register(self._collector)


class _CallCollector:
    """Turns the numbers the hooks keep into metric families."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        m = self._metrics
        calls, errors, duration, in_flight, search = families = self._families()
        for (backend, tool, outcome), series in list(m._series.items()):
            calls.add_metric([backend, tool, outcome], series.count)
        for (backend, code), count in list(m._errors.items()):
            errors.add_metric([backend, code], count)
        for (backend, tool), histogram in list(m._durations.items()):
            duration.add_metric([backend, tool], _buckets(_CALL_LE, histogram), histogram.sum)
        for backend, count in list(m._in_flight.items()):
            in_flight.add_metric([backend], count)
        search.add_metric([], _buckets(_SEARCH_LE, m._search), m._search.sum)
        return families

    def _families(
        self,
    ) -> tuple[
        CounterMetricFamily, CounterMetricFamily, HistogramMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    ]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        return (
            CounterMetricFamily(
                "quiver_calls", "Downstream tool calls by outcome.", labels=["backend", "tool", "outcome"]
            ),
            CounterMetricFamily(
                "quiver_call_errors", "Failed downstream tool calls by error code.", labels=["backend", "code"]
            ),
            HistogramMetricFamily(
                "quiver_call_duration_seconds",
                "Time a downstream tool call took, waiting for a slot or a backend start included.",
                labels=["backend", "tool"],
            ),
            GaugeMetricFamily(
                "quiver_calls_in_flight", "Tool calls running or waiting for a slot.", labels=["backend"]
            ),
            HistogramMetricFamily("quiver_search_duration_seconds", "Time to answer a tool search.", labels=[]),
        )


def _le(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The `le` label values of a histogram's buckets, +Inf last."""
    return (*(repr(float(bound)) for bound in bounds), "+Inf")


_CALL_LE = _le(CALL_BUCKETS)
_SEARCH_LE = _le(SEARCH_BUCKETS)


def _buckets(le: tuple[str, ...], histogram: _Histogram) -> list[tuple[str, float]]:
    """Cumulative counts per upper bound, as the exposition formats want them."""
    return list(zip(le, accumulate(histogram.counts), strict=True))


class CallTimer:
    """Times one call and reports it when the `with` block ends (see `Metrics.track_call`)."""

    __slots__ = ("_backend", "_metrics", "_started", "_tool", "outcome")

    def __init__(self, metrics: Metrics, backend: str, tool: str) -> None:
        self._metrics = metrics
        self._backend = backend
        self._tool = tool
        self._started = 0.0
        self.outcome = OK

    def __enter__(self) -> CallTimer:
        self._metrics.call_started(self._backend)
        self._started = time.perf_counter()
        return self

    def set_result(self, result: types.Result) -> None:
        self.outcome = result_outcome(result)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        seconds = time.perf_counter() - self._started
        outcome, code = (self.outcome, None) if exc is None else error_outcome(exc)
        self._metrics.observe_call(self._backend, self._tool, outcome, seconds, code)
        self._metrics.call_finished(self._backend)


_BREAKER_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
# state, restarts, breaker, catalog tools, tokens saved
_Families = tuple[
    "GaugeMetricFamily", "CounterMetricFamily", "GaugeMetricFamily", "GaugeMetricFamily", "GaugeMetricFamily"
]


class _GatewayCollector:
    """Backend states, restarts and breakers, the catalog's size and the context tokens it saves."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._version = -1
        self._saved = 0
        self._surface: int | None = None

    def describe(self) -> Iterable[Metric]:
        """The families (without samples), so registering never computes anything."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        state, restarts, breaker, tools, saved = self._families()
        for status in self._gateway.supervisor.statuses():
            for candidate in BackendState:
                state.add_metric([status.name, candidate.value], 1.0 if status.state is candidate else 0.0)
            restarts.add_metric([status.name], status.restarts)
            breaker.add_metric([status.name], _BREAKER_VALUES[status.breaker])
        catalog = self._gateway.catalog
        tools.add_metric([], len(catalog))
        saved.add_metric([], self._tokens_saved(catalog))
        return [state, restarts, breaker, tools, saved]

    def _families(self) -> _Families:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

        return (
            GaugeMetricFamily(
                "quiver_backend_state",
                "1 for the state each backend is in, 0 for the others.",
                labels=["backend", "state"],
            ),
            CounterMetricFamily("quiver_backend_restarts", "Restarts of each backend.", labels=["backend"]),
            GaugeMetricFamily(
                "quiver_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", labels=["backend"]
            ),
            GaugeMetricFamily("quiver_catalog_tools", "Tools known to the catalog (cached or live)."),
            GaugeMetricFamily(
                "quiver_context_tokens_saved",
                "Tokens of listing every known tool directly, minus those of the meta-tool surface.",
            ),
        )

    def _tokens_saved(self, catalog: Catalog) -> int:
        """Recounted only when the catalog changed (tokenising a large catalog takes milliseconds)."""
        if catalog.version != self._version:
            from quiver.tokens import tools_list_tokens

            version = catalog.version
            direct = tools_list_tokens([tool for listing in catalog.listings().values() for tool in listing.tools])
            self._saved = direct - self._surface_tokens()
            self._version = version
        return self._saved

    def _surface_tokens(self) -> int:
        if self._surface is None:
            from quiver.metatools import INSTRUCTIONS, MetaTools
            from quiver.tokens import tools_list_tokens

            self._surface = tools_list_tokens(MetaTools().definitions, INSTRUCTIONS)
        return self._surface


def metrics_endpoint(metrics: Metrics) -> MetricsEndpoint:
    """An endpoint (an ASGI app, so `auth.protect` can wrap it) serving `metrics` for a `Route`."""
    return MetricsEndpoint(metrics)


class MetricsEndpoint:
    """`metrics` in the Prometheus text format (OpenMetrics if the scraper asks for it)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from prometheus_client.exposition import choose_encoder

        encode, content_type = choose_encoder(Request(scope).headers.get("accept", ""))
        response = Response(encode(self.metrics.registry), headers={"Content-Type": content_type})
        await response(scope, receive, send)
