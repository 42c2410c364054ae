"""all-MiniLM-L6-v2 in plain numpy: WordPiece tokenizer, six BERT layers, mean pooling.

The model's files (`model.safetensors`, `vocab.txt`, `config.json`) come from an installed
package or a directory; nothing is downloaded and no deep-learning runtime is imported, so the
semantic stage costs numpy and 90 MB of weights instead of a PyTorch install. Outputs match
sentence-transformers' to float32 rounding (see tests/search/test_minilm.py).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import struct
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

MAX_WORD_CHARS = 100  # BERT's WordPiece maps longer words to [UNK]
_DTYPES = {"F32": "float32", "F16": "float16", "I64": "int64"}


def load_safetensors(path: Path) -> dict[str, NDArray[Any]]:
    """The tensors of a `.safetensors` file (a JSON header, then raw little-endian arrays).

    The arrays are read-only views of a memory map: the weights cost page cache, not copies.
    """
    import numpy as np

    with path.open("rb") as handle:
        (header_size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_size))
    data = np.memmap(path, dtype=np.uint8, mode="r")
    base = 8 + header_size
    tensors: dict[str, NDArray[Any]] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        begin, _ = spec["data_offsets"]
        size = int(np.prod(spec["shape"]))
        array = np.frombuffer(data, dtype=_DTYPES[spec["dtype"]], count=size, offset=base + begin)
        tensors[name] = array.reshape(spec["shape"])
    return tensors


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        return None
    return threadpoolctl.ThreadpoolController()


def single_threaded_blas() -> AbstractContextManager[object]:
    """Run numpy's BLAS on one thread: for these small matrices a second OpenBLAS thread adds
    little when the machine is idle and, when other work shares the cores, spins and makes a
    query 4-10 times slower (measured in docs/SEARCH.md). A no-op without threadpoolctl."""
    controller = _blas_controller()
    if controller is None:
        return nullcontext()
    limit: AbstractContextManager[object] = controller.limit(limits=1, user_api="blas")
    return limit


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


class WordPiece:
    """BERT's uncased tokenizer: clean, split CJK and punctuation, strip accents, WordPiece."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = {token: index for index, token in enumerate(vocabulary)}
        self.unknown = self.vocabulary["[UNK]"]
        self.start = self.vocabulary["[CLS]"]
        self.end = self.vocabulary["[SEP]"]
        self._pieces: dict[str, list[int]] = {}

    def words(self, text: str) -> list[str]:
        spaced: list[str] = []
        for char in text:
            code = ord(char)
            if code in (0, 0xFFFD) or (unicodedata.category(char).startswith("C") and char not in "\t\n\r"):
                continue
            if _is_cjk(code):
                spaced.append(f" {char} ")
            else:
                spaced.append(" " if char.isspace() else char)
        words: list[str] = []
        for word in "".join(spaced).lower().split():
            word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
            current = ""
            for char in word:
                if _is_punctuation(char):
                    if current:
                        words.append(current)
                        current = ""
                    words.append(char)
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def pieces(self, word: str) -> list[int]:
        cached = self._pieces.get(word)
        if cached is not None:
            return cached
        pieces: list[int] = []
        start = 0
        while start < len(word):
            if len(word) > MAX_WORD_CHARS:
                pieces = [self.unknown]
                break
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self.vocabulary.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                pieces = [self.unknown]
                break
            pieces.append(found)
            start = end
        self._pieces[word] = pieces
        return pieces

    def encode(self, text: str, max_length: int) -> list[int]:
        ids = [piece for word in self.words(text) for piece in self.pieces(word)]
        return [self.start, *ids[: max_length - 2], self.end]


@lru_cache(maxsize=1)
def _second_core() -> ThreadPoolExecutor | None:
    """One worker for the other half of each dense layer, on a machine with a second core and
    BLAS held to one thread (`single_threaded_blas`); else None and layers run whole."""
    if (os.cpu_count() or 1) < 2 or _blas_controller() is None:
        return None
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="quiver-minilm")


class _Dense:
    """A linear layer whose output columns are split in two, computed on two cores at once.

    Unlike a second OpenBLAS thread, which spins while it waits and makes a query many times
    slower when other work shares the cores, the worker sleeps: on an idle machine a query
    takes 15 % less time, on a busy one the same. The halves are contiguous (in, out / 2)
    copies; the result is one product's (the model's embeddings came out bitwise the same).
    """

    def __init__(self, weight: NDArray[np.float32], bias: NDArray[np.float32]) -> None:
        import numpy as np

        half = weight.shape[1] // 2
        self.left = np.ascontiguousarray(weight[:, :half])
        self.right = np.ascontiguousarray(weight[:, half:])
        self.bias = bias

    def __call__(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        import numpy as np

        pool = _second_core()
        if pool is None:
            whole: NDArray[np.float32] = np.concatenate([x @ self.left, x @ self.right], axis=-1) + self.bias
            return whole
        right = pool.submit(np.matmul, x, self.right)
        out: NDArray[np.float32] = np.concatenate([x @ self.left, right.result()], axis=-1) + self.bias
        return out


def _erf(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf and BERT's GELU needs it."""
    import numpy as np

    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t
    return sign * (1.0 - poly * np.exp(-x * x))  # type: ignore[no-any-return]


class MiniLM:
    """A sentence encoder: texts in, L2-normalised mean-pooled embeddings out."""

    def __init__(self, model_dir: Path, *, max_length: int = 256, batch_size: int = 32) -> None:
        import numpy as np

        config_text = (model_dir / "config.json").read_text(encoding="utf-8")
        config = json.loads(config_text)
        # Names the weights for cached embeddings: the model's config and the weights' size.
        weights_size = (model_dir / "model.safetensors").stat().st_size
        digest = hashlib.blake2b(f"{config_text}\n{weights_size}".encode(), digest_size=8).hexdigest()
        self.fingerprint = f"minilm-{digest}"
        vocabulary = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
        weights = load_safetensors(model_dir / "model.safetensors")
        self.tokenizer = WordPiece(vocabulary)
        self.max_length = min(max_length, int(config["max_position_embeddings"]))
        self.batch_size = batch_size
        self.heads = int(config["num_attention_heads"])
        self.epsilon = float(config["layer_norm_eps"])

        def get(name: str) -> NDArray[np.float32]:
            return np.asarray(weights[name], dtype=np.float32)

        def dense(prefix: str, *parts: str) -> _Dense:
            # Linear layers store (out, in); `_Dense` keeps contiguous (in, out) halves, which
            # multiply several times faster than transposed views with OpenBLAS. Several parts
            # (query, key, value) become one layer. Other tensors stay views of the map.
            weight = np.concatenate([get(f"{prefix}{part}.weight") for part in parts]).T
            return _Dense(weight, np.concatenate([get(f"{prefix}{part}.bias") for part in parts]))

        self.word = get("embeddings.word_embeddings.weight")
        self.dimension = int(self.word.shape[1])
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")[0]
        self.embedding_norm = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers: list[dict[str, Any]] = []
        for index in range(int(config["num_hidden_layers"])):
            prefix = f"encoder.layer.{index}."
            self.layers.append(
                {
                    "qkv": dense(f"{prefix}attention.self.", "query", "key", "value"),
                    "out": dense(f"{prefix}attention.output.", "dense"),
                    "norm1_w": get(f"{prefix}attention.output.LayerNorm.weight"),
                    "norm1_b": get(f"{prefix}attention.output.LayerNorm.bias"),
                    "up": dense(f"{prefix}intermediate.", "dense"),
                    "down": dense(f"{prefix}output.", "dense"),
                    "norm2_w": get(f"{prefix}output.LayerNorm.weight"),
                    "norm2_b": get(f"{prefix}output.LayerNorm.bias"),
                }
            )

    def _norm(self, x: NDArray[np.float32], weight: NDArray[np.float32], bias: NDArray[np.float32]) -> Any:
        import numpy as np

        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)
        return centred / np.sqrt(variance + self.epsilon) * weight + bias

    def forward(self, ids: NDArray[np.int64], mask: NDArray[np.float32]) -> NDArray[np.float32]:
        """Pooled, normalised embeddings of a padded batch of token ids."""
        import numpy as np

        batch, length = ids.shape
        heads = self.heads
        x = self._norm(self.word[ids] + self.position[:length] + self.token_type, *self.embedding_norm)
        width = x.shape[-1]
        head_width = width // heads
        attention_bias = ((1.0 - mask) * -1e9).astype(np.float32)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head_width))
        for layer in self.layers:
            qkv = layer["qkv"](x)
            q, k, v = (
                qkv[..., i * width : (i + 1) * width].reshape(batch, length, heads, head_width).transpose(0, 2, 1, 3)
                for i in range(3)
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + attention_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
            x = self._norm(layer["out"](context) + x, layer["norm1_w"], layer["norm1_b"])
            hidden = layer["up"](x)
            hidden = 0.5 * hidden * (1.0 + _erf(hidden * np.float32(1.0 / np.sqrt(2.0))))
            x = self._norm(layer["down"](hidden) + x, layer["norm2_w"], layer["norm2_b"])
        weights = mask[..., None]
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)  # type: ignore[no-any-return]

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embeddings of `texts`, one row each; batches group texts of similar length."""
        import numpy as np

        encoded = [self.tokenizer.encode(text, self.max_length) for text in texts]
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        with single_threaded_blas():
            self._encode_batches(encoded, order, out)
        return out

    def _encode_batches(self, encoded: list[list[int]], order: list[int], out: NDArray[np.float32]) -> None:
        import numpy as np

        for begin in range(0, len(order), self.batch_size):
            chunk = order[begin : begin + self.batch_size]
            length = max(len(encoded[i]) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.float32)
            for row, i in enumerate(chunk):
                ids[row, : len(encoded[i])] = encoded[i]
                mask[row, : len(encoded[i])] = 1.0
            out[chunk] = self.forward(ids, mask)
