"""Lexical scoring over a tool's fields, kept as one segment per backend so that updates stay local.

Each backend's tools are analysed once into a segment (term ids, per-field term frequencies,
field lengths). A change to one backend replaces its segment only; the postings of all
segments are then merged lazily on the next query, a few numpy calls (tens of milliseconds at
10,000 tools) instead of re-analysing every tool.

A tool's lexical score combines two classic models over the same postings. BM25F: per-field
frequencies are length-normalised and weighted before one saturation, so a word found in both
the name and the description counts once, strongly. Query likelihood: the probability of the
query's words under a mixture of the tool's per-field language models, each smoothed towards
the whole catalogue (Dirichlet priors). BM25F saturates each word on its own, so a tool whose
long description touches many of a long task's words can outrank the tool whose name says
what the task asks; the likelihood weighs how much of each field the query's words make up,
and its small priors on the short name and backend fields make a match there count most.
Both are rescaled per query (BM25F by its best score, the log-likelihood to [0, 1] over the
tools that match at least one word) and added, the likelihood at `LikelihoodParams.weight`.
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
    """Field weights and length normalisation; the defaults are the evaluated ones (docs/SEARCH.md).

    The field weights also mix the fields' language models in the query likelihood.
    """

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
class LikelihoodParams:
    """Dirichlet prior of each field's language model, and the likelihood's share of the score.

    A prior is the number of catalogue-wide words a field is smoothed with: small for the
    short name and backend fields (a matching word there is strong evidence), large for
    descriptions (so a long one is not rewarded for repeating a word). `weight=0` leaves BM25F.

    Only the `shortlist` best documents by BM25F are scored by the likelihood (the others keep
    their BM25F share; None scores every match): a long query matches much of a catalogue, the
    likelihood of every match is most of a search's cost, and the first places come from the
    shortlist anyway (the same figures on the benchmark, in half the time).
    """

    name: float = 20.0
    description: float = 1000.0
    parameters: float = 20.0
    parameter_docs: float = 50.0
    backend: float = 5.0
    weight: float = 2.0
    shortlist: int | None = 400

    def priors(self) -> tuple[float, ...]:
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
    likelihood: NDArray[np.float32]  # sum over fields of mix * tf / (length + prior), per posting
    inverse: NDArray[np.float32]  # documents x fields: mix / (length + prior)
    background: NDArray[np.float32]  # terms x fields: prior * catalogue probability of the term


@dataclass(slots=True)
class LexicalIndex:
    params: Bm25fParams = field(default_factory=Bm25fParams)
    analyzer: Analyzer = DEFAULT_ANALYZER
    likelihood: LikelihoodParams = field(default_factory=LikelihoodParams)
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
        """The lexical score of every document (in `ids` order) for weighted query terms."""
        import numpy as np

        merged = self._merge()
        found = self.postings(query)
        scores = self.bm25f(query, found)
        weight = self.likelihood.weight
        best = float(scores.max()) if len(scores) else 0.0
        if best <= 0 or weight <= 0:
            return scores
        only = None
        shortlist = self.likelihood.shortlist
        if shortlist is not None and np.count_nonzero(scores) > shortlist:
            only = np.argpartition(-scores, shortlist)[:shortlist]
        candidates, likelihood = self.log_likelihood(found, merged, only)
        scores /= best
        low, high = float(likelihood.min()), float(likelihood.max())
        if high > low:
            scores[candidates] += weight * (likelihood - low) / (high - low)
        else:
            scores[candidates] += weight
        return scores

    def bm25f(
        self, query: Mapping[str, float], found: list[tuple[float, int, int, int]] | None = None
    ) -> NDArray[np.float32]:
        """BM25F score of every document (in `ids` order)."""
        import numpy as np

        merged = self._merge()
        count = len(merged.ids)
        scores = np.zeros(count, dtype=np.float32)
        k1 = self.params.k1
        for query_weight, _, low, high in self.postings(query) if found is None else found:
            frequency = high - low
            idf = math.log(1.0 + (count - frequency + 0.5) / (frequency + 0.5))
            weight = merged.weight[low:high]
            scores[merged.doc[low:high]] += (query_weight * idf * (k1 + 1.0)) * weight / (k1 + weight)
        return scores

    def log_likelihood(
        self,
        found: list[tuple[float, int, int, int]],
        merged: _Merged | None = None,
        only: NDArray[np.intp] | None = None,
    ) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
        """The documents matching any query term (or `only` these), and the query's log-likelihood under each."""
        import numpy as np

        merged = merged or self._merge()
        if not found:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
        spans = [np.arange(low, high) for _, _, low, high in found]
        postings = np.concatenate(spans)
        columns = np.repeat(np.arange(len(found)), [len(span) for span in spans])
        candidates = np.unique(merged.doc[postings] if only is None else only).astype(np.intp)
        row = np.full(len(merged.ids), -1, dtype=np.intp)
        row[candidates] = np.arange(len(candidates))
        if only is not None:
            kept = row[merged.doc[postings]] >= 0
            postings, columns = postings[kept], columns[kept]
        term_ids = np.asarray([term_id for _, term_id, _, _ in found], dtype=np.intp)
        # Every candidate's smoothed probability of every query term: the catalogue's share, plus
        # the document's own where the term occurs (each document appears once per term).
        probability = merged.inverse[candidates] @ merged.background[term_ids].T
        probability[row[merged.doc[postings]], columns] += merged.likelihood[postings]
        weights = np.asarray([query_weight for query_weight, _, _, _ in found], dtype=np.float32)
        likelihood: NDArray[np.float32] = np.log(np.maximum(probability, 1e-30)) @ weights
        return candidates, likelihood

    def postings(self, query: Mapping[str, float]) -> list[tuple[float, int, int, int]]:
        """(query weight, term id, first posting, end) of each query term with postings."""
        merged = self._merge()
        found: list[tuple[float, int, int, int]] = []
        for term, query_weight in query.items():
            term_id = self._vocabulary.get(term)
            if term_id is None or term_id + 1 >= len(merged.start) or query_weight <= 0:
                continue
            low, high = int(merged.start[term_id]), int(merged.start[term_id + 1])
            if low < high:
                found.append((query_weight, term_id, low, high))
        return found

    def _merge(self) -> _Merged:
        if self._merged is not None:
            return self._merged
        import numpy as np

        segments = list(self._segments.values())
        width = len(FIELDS)
        if not segments:
            self._merged = _Merged(
                ids=[],
                doc=np.zeros(0, dtype=np.int32),
                weight=np.zeros(0, dtype=np.float32),
                start=np.zeros(1, dtype=np.int64),
                likelihood=np.zeros(0, dtype=np.float32),
                inverse=np.zeros((0, width), dtype=np.float32),
                background=np.zeros((0, width), dtype=np.float32),
            )
            return self._merged
        ids = [doc_id for segment in segments for doc_id in segment.ids]
        offsets = np.cumsum([0] + [len(segment.ids) for segment in segments[:-1]])
        term = np.concatenate([segment.term for segment in segments])
        doc = np.concatenate([segment.doc + offset for segment, offset in zip(segments, offsets, strict=True)])
        tf = np.concatenate([segment.tf for segment in segments]).reshape(-1, width)
        lengths = np.concatenate([segment.lengths for segment in segments]).reshape(-1, width)
        weights = np.asarray(self.params.weights(), dtype=np.float32)
        # BM25F: length-normalised, weighted frequencies summed over the fields.
        average = lengths.mean(axis=0) if len(lengths) else np.ones(width, dtype=np.float32)
        average[average <= 0] = 1.0
        b = self.params.b
        norm = (1.0 - b) + b * lengths / average
        pseudo = (tf * (weights / norm[doc])).sum(axis=1).astype(np.float32)
        # Query likelihood: a mixture of Dirichlet-smoothed field models, mixed by the field weights.
        priors = np.asarray(self.likelihood.priors(), dtype=np.float32)
        mix = weights / weights.sum() if weights.sum() > 0 else np.full(width, 1.0 / width, dtype=np.float32)
        inverse = (mix / (lengths + priors)).astype(np.float32)
        own = (tf * inverse[doc]).sum(axis=1).astype(np.float32)
        vocabulary = len(self._vocabulary)
        collection = np.stack(
            [np.bincount(term, weights=tf[:, column], minlength=vocabulary) for column in range(width)], axis=1
        )
        totals = np.maximum(lengths.sum(axis=0), 1.0)
        background = (collection / totals * priors).astype(np.float32)
        order = np.argsort(term, kind="stable")
        start = np.zeros(vocabulary + 1, dtype=np.int64)
        np.cumsum(np.bincount(term, minlength=vocabulary), out=start[1:])
        self._merged = _Merged(
            ids=ids,
            doc=doc[order].astype(np.int32),
            weight=pseudo[order],
            start=start,
            likelihood=own[order],
            inverse=inverse,
            background=background,
        )
        return self._merged

    def memory_bytes(self) -> int:
        """Bytes held in numpy arrays (segments and merged postings), for reporting."""
        arrays: list[Any] = []
        for segment in self._segments.values():
            arrays += [segment.term, segment.doc, segment.tf, segment.lengths]
        merged = self._merged
        if merged is not None:
            arrays += [merged.doc, merged.weight, merged.start, merged.likelihood, merged.inverse, merged.background]
        return sum(int(array.nbytes) for array in arrays)
