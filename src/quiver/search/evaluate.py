"""Tool-retrieval evaluation: load a catalogue and tasks, build the engine, measure it.

The catalogue format is one tool a line (`server`, `name`, `description`, `inputSchema`,
`source`); tasks carry `gold` and `acceptable` lists of `[server, tool]`. A task is a hit at k
when any acceptable tool (the gold ones if none are listed) is among the first k results.
`quiver eval-search` is a thin wrapper over `run_benchmark`, so the numbers it prints are those
of the engine the gateway runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from quiver.ids import ToolId, backend_name_from
from quiver.search.engine import BackendInfo, Hit, SearchDoc, SearchEngine

RANK_DEPTH = 100  # results fetched per task; MRR counts ranks up to here (past it, 0)
METRIC_KEYS = ("r1", "r5", "r10", "mrr", "p50_ms", "p95_ms", "n")


class Searcher(Protocol):
    """What `evaluate` measures: the engine, or any ranking with the same `search` call."""

    def search(self, query: str, limit: int = 5, *, allow: Callable[[str], bool] | None = None) -> list[Hit]: ...


@dataclass(frozen=True, slots=True)
class Catalogue:
    backends: list[BackendInfo]
    docs: dict[str, list[SearchDoc]]
    ids: dict[tuple[str, str], str]  # (server, tool) -> tool id
    sources: dict[str, str]  # tool id -> the catalogue's `source` label


@dataclass(frozen=True, slots=True)
class Query:
    id: str
    text: str
    gold: tuple[tuple[str, str], ...]
    acceptable: tuple[tuple[str, str], ...] = ()
    source: str | None = None

    @property
    def targets(self) -> tuple[tuple[str, str], ...]:
        """The tools that count as a hit: the acceptable ones, else the gold ones."""
        return self.acceptable or self.gold


def tool_id(server: str, name: str) -> str:
    """The id a catalogue tool gets: `<backend>.<tool>` with the server turned into a backend name."""
    return str(ToolId(backend_name_from(server), name))


def _lines(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def read_catalogue(path: Path) -> Catalogue:
    """Every tool of a catalogue file, grouped by backend, with the way back to (server, tool)."""
    backends: dict[str, BackendInfo] = {}
    names: dict[str, str] = {}  # server -> backend name
    docs: dict[str, list[SearchDoc]] = {}
    ids: dict[tuple[str, str], str] = {}
    sources: dict[str, str] = {}
    for record in _lines(path):
        server, name = str(record["server"]), str(record["name"])
        backend = names.get(server)
        if backend is None:
            backend = base = backend_name_from(server)
            suffix = 2
            while backend in backends:
                backend = f"{base[:60]}-{suffix}"
                suffix += 1
            names[server] = backend
            backends[backend] = BackendInfo(name=backend)
            docs[backend] = []
        schema = record.get("inputSchema")
        doc_id = str(ToolId(backend, name))
        if (server, name) in ids:
            continue  # a repeated line; the first definition wins
        ids[server, name] = doc_id
        sources[doc_id] = str(record.get("source") or "")
        docs[backend].append(
            SearchDoc(
                id=doc_id,
                backend=backend,
                name=name,
                description=str(record.get("description") or ""),
                title=record.get("title") if isinstance(record.get("title"), str) else None,
                input_schema=schema if isinstance(schema, dict) else {},
            )
        )
    return Catalogue(list(backends.values()), docs, ids, sources)


def load_catalogue(path: Path) -> tuple[list[BackendInfo], dict[str, list[SearchDoc]]]:
    """The backends and their tools of a catalogue file (ids as `tool_id(server, name)`)."""
    catalogue = read_catalogue(path)
    return catalogue.backends, catalogue.docs


def load_queries(path: Path) -> list[Query]:
    def pairs(value: Any) -> tuple[tuple[str, str], ...]:
        return tuple((str(server), str(tool)) for server, tool in value or ())

    return [
        Query(
            id=str(record.get("id", index)),
            text=str(record["query"]),
            gold=pairs(record.get("gold")),
            acceptable=pairs(record.get("acceptable")),
            source=record.get("source"),
        )
        for index, record in enumerate(_lines(path))
    ]


def build_engine(
    backends: Sequence[BackendInfo], docs: Mapping[str, Sequence[SearchDoc]], **options: Any
) -> SearchEngine:
    """The gateway's engine over a catalogue; `options` go to `SearchEngine` (e.g. `semantic=False`)."""
    engine = SearchEngine(**options)
    for info in backends:
        engine.set_backend(info, docs.get(info.name, ()))
    engine.prepare()
    return engine


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def evaluate(
    engine: Searcher,
    queries: Sequence[Query],
    *,
    ids: Mapping[tuple[str, str], str] | None = None,
    sources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """R@1/5/10, MRR and per-query latency (p50/p95 of `search`) over the whole engine.

    With `sources` (tool id -> source label) the result also holds `source`: the same figures
    when each task searches only the tools of its targets' own source.
    """
    result = _measure(engine, queries, ids, None)
    if sources is not None:
        result["source"] = _measure(engine, queries, ids, sources)
    return result


def _measure(
    engine: Searcher,
    queries: Sequence[Query],
    ids: Mapping[tuple[str, str], str] | None,
    sources: Mapping[str, str] | None,
) -> dict[str, Any]:
    ranks: list[int | None] = []
    latencies: list[float] = []
    for query in queries:
        targets = {ids[pair] if ids is not None else tool_id(*pair) for pair in query.targets}
        allow = None
        if sources is not None:
            own = {sources.get(target) for target in targets}
            allow = _source_filter(sources, own)
        started = time.perf_counter()
        hits = engine.search(query.text, RANK_DEPTH, allow=allow)
        latencies.append((time.perf_counter() - started) * 1000.0)
        found = [index for index, hit in enumerate(hits) if hit.id in targets]
        ranks.append(found[0] if found else None)
    count = len(ranks)

    def recall(k: int) -> float:
        return sum(1 for rank in ranks if rank is not None and rank < k) / count if count else 0.0

    return {
        "r1": recall(1),
        "r5": recall(5),
        "r10": recall(10),
        "mrr": sum(1.0 / (rank + 1) for rank in ranks if rank is not None) / count if count else 0.0,
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "n": count,
    }


def _source_filter(sources: Mapping[str, str], own: set[str | None]) -> Callable[[str], bool]:
    def allow(doc_id: str) -> bool:
        return sources.get(doc_id) in own

    return allow


def run_benchmark(
    catalogue_path: Path, queries_path: Path, *, semantic: bool | None = None, **options: Any
) -> dict[str, Any]:
    """Build the engine from a catalogue file and evaluate it on a task file (the CLI's work)."""
    catalogue = read_catalogue(catalogue_path)
    queries = load_queries(queries_path)
    started = time.perf_counter()
    engine = build_engine(catalogue.backends, catalogue.docs, semantic=semantic, **options)
    index_seconds = time.perf_counter() - started
    result = evaluate(engine, queries, ids=catalogue.ids, sources=catalogue.sources)
    result["tools"] = len(engine)
    result["semantic"] = engine.semantic
    result["index_s"] = index_seconds
    return result
