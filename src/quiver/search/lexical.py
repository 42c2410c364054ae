"""BM25F over a tool's fields, kept as one segment per backend so that updates stay local.

Each backend's tools are analysed once into a segment (term ids, per-field term frequencies,
field lengths). A change to one backend replaces its segment only; the postings of all
segments are then merged lazily on the next query, a few numpy calls (tens of milliseconds at
10,000 tools) instead of re-analysing every tool. Scoring follows BM25F: per-field frequencies
are length-normalised and weighted before one saturation, so a word found in both the name
and the description counts once, strongly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quiver.search.analysis import DEFAULT_ANALYZER, Analyzer

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

FIELDS = ("name", "description", "parameters", "parameter_docs", "backend")


@dataclass(frozen=True, slots=True)
class Bm25fParams:
    """Field weights and length normalisation; the defaults are the evaluated ones (docs/SEARCH.md)."""

    name: float = 3.0
    description: float = 1.0
    parameters: float = 0.5
    parameter_docs: float = 0.3
    backend: float = 2.0
    b: float = 0.75
    k1: float = 1.2

    def weights(self) -> tuple[float, ...]:
        return (self.name, self.description, self.parameters, self.parameter_docs, self.backend)


@dataclass(frozen=True, slots=True)
class FieldText:
    """The raw text of a tool's fields, before analysis."""

    name: str
    description: str = ""
    parameters: str = ""
    parameter_docs: str = ""


@dataclass(slots=True)
class _Segment:
    ids: list[str]
    term: NDArray[np.int32]
    doc: NDArray[np.int32]
    tf: NDArray[np.float32]  # postings x fields
    lengths: NDArray[np.float32]  # documents x fields


@dataclass(slots=True)
class _Merged:
    ids: list[str]
    doc: NDArray[np.int32]
    weight: NDArray[np.float32]  # BM25F pseudo-frequency of each posting
    start: NDArray[np.int64]  # postings of term t are [start[t], start[t + 1])


@dataclass(slots=True)
class LexicalIndex:
    params: Bm25fParams = field(default_factory=Bm25fParams)
    analyzer: Analyzer = DEFAULT_ANALYZER
    _vocabulary: dict[str, int] = field(default_factory=dict)
    _segments: dict[str, _Segment] = field(default_factory=dict)
    _merged: _Merged | None = None

    def __len__(self) -> int:
        return sum(len(segment.ids) for segment in self._segments.values())

    def set_segment(self, key: str, backend_text: str, docs: Sequence[tuple[str, FieldText]]) -> None:
        """Analyse and store one backend's tools, replacing what was stored under `key`."""
        import numpy as np

        tokenize = self.analyzer.tokenize
        backend_terms = tokenize(backend_text)
        vocabulary = self._vocabulary
        width = len(FIELDS)
        terms: list[int] = []
        positions: list[int] = []
        frequencies: list[list[float]] = []
        lengths = np.zeros((len(docs), width), dtype=np.float32)
        for position, (_, text) in enumerate(docs):
            fields = (
                tokenize(text.name),
                tokenize(text.description),
                tokenize(text.parameters),
                tokenize(text.parameter_docs),
                backend_terms,
            )
            counts: dict[int, list[float]] = {}
            for column, field_terms in enumerate(fields):
                lengths[position, column] = len(field_terms)
                for term in field_terms:
                    term_id = vocabulary.setdefault(term, len(vocabulary))
                    row = counts.get(term_id)
                    if row is None:
                        row = counts[term_id] = [0.0] * width
                    row[column] += 1.0
            for term_id, row in counts.items():
                terms.append(term_id)
                positions.append(position)
                frequencies.append(row)
        self._segments[key] = _Segment(
            ids=[doc_id for doc_id, _ in docs],
            term=np.asarray(terms, dtype=np.int32),
            doc=np.asarray(positions, dtype=np.int32),
            tf=np.asarray(frequencies, dtype=np.float32).reshape(len(terms), width),
            lengths=lengths,
        )
        self._merged = None

    def remove_segment(self, key: str) -> None:
        if self._segments.pop(key, None) is not None:
            self._merged = None

    @property
    def ids(self) -> list[str]:
        """Document ids in scoring order."""
        return self._merge().ids

    def scores(self, query: Mapping[str, float]) -> NDArray[np.float32]:
        """BM25F score of every document (in `ids` order) for weighted query terms."""
        import numpy as np

        merged = self._merge()
        scores = np.zeros(len(merged.ids), dtype=np.float32)
        count = len(merged.ids)
        k1 = self.params.k1
        for term, query_weight in query.items():
            term_id = self._vocabulary.get(term)
            if term_id is None or term_id + 1 >= len(merged.start):
                continue
            low, high = int(merged.start[term_id]), int(merged.start[term_id + 1])
            if low == high:
                continue
            frequency = high - low
            idf = math.log(1.0 + (count - frequency + 0.5) / (frequency + 0.5))
            weight = merged.weight[low:high]
            scores[merged.doc[low:high]] += (query_weight * idf * (k1 + 1.0)) * weight / (k1 + weight)
        return scores

    def _merge(self) -> _Merged:
        if self._merged is not None:
            return self._merged
        import numpy as np

        segments = list(self._segments.values())
        ids = [doc_id for segment in segments for doc_id in segment.ids]
        width = len(FIELDS)
        if not segments:
            empty = np.zeros(0, dtype=np.int32)
            self._merged = _Merged([], empty, np.zeros(0, dtype=np.float32), np.zeros(1, dtype=np.int64))
            return self._merged
        offsets = np.cumsum([0] + [len(segment.ids) for segment in segments[:-1]])
        term = np.concatenate([segment.term for segment in segments])
        doc = np.concatenate([segment.doc + offset for segment, offset in zip(segments, offsets, strict=True)])
        tf = np.concatenate([segment.tf for segment in segments]).reshape(-1, width)
        lengths = np.concatenate([segment.lengths for segment in segments]).reshape(-1, width)
        average = lengths.mean(axis=0) if len(lengths) else np.ones(width, dtype=np.float32)
        average[average <= 0] = 1.0
        b = self.params.b
        norm = (1.0 - b) + b * lengths / average
        weights = np.asarray(self.params.weights(), dtype=np.float32)
        pseudo = (tf * (weights / norm[doc])).sum(axis=1).astype(np.float32)
        order = np.argsort(term, kind="stable")
        start = np.zeros(len(self._vocabulary) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term, minlength=len(self._vocabulary)), out=start[1:])
        self._merged = _Merged(ids, doc[order].astype(np.int32), pseudo[order], start)
        return self._merged

    def memory_bytes(self) -> int:
        """Bytes held in numpy arrays (segments and merged postings), for reporting."""
        total = 0
        arrays: list[Any] = []
        for segment in self._segments.values():
            arrays += [segment.term, segment.doc, segment.tf, segment.lengths]
        if self._merged is not None:
            arrays += [self._merged.doc, self._merged.weight, self._merged.start]
        for array in arrays:
            total += int(array.nbytes)
        return total
