from __future__ import annotations

import json
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from quiver.search import minilm
from quiver.search.minilm import MiniLM, WordPiece, load_safetensors, single_threaded_blas
from quiver.search.semantic import find_model_dir, load_encoder

VOCABULARY = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "un",
    "##aff",
    "##able",
    "run",
    "##ning",
    "!",
    "cafe",
    "天",
    "気",
]


def write_safetensors(path: Path, tensors: dict[str, NDArray[np.float32]]) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A one-layer, 8-wide BERT with random weights, in the model package's file layout."""
    rng = np.random.default_rng(7)
    hidden, inner = 8, 16

    def rand(*shape: int) -> NDArray[np.float32]:
        return rng.normal(0, 0.5, shape).astype(np.float32)

    tensors = {
        "embeddings.word_embeddings.weight": rand(len(VOCABULARY), hidden),
        "embeddings.position_embeddings.weight": rand(16, hidden),
        "embeddings.token_type_embeddings.weight": rand(2, hidden),
        "embeddings.LayerNorm.weight": np.ones(hidden, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(hidden, np.float32),
    }
    prefix = "encoder.layer.0."
    for part in ("query", "key", "value"):
        tensors[f"{prefix}attention.self.{part}.weight"] = rand(hidden, hidden)
        tensors[f"{prefix}attention.self.{part}.bias"] = rand(hidden)
    tensors |= {
        f"{prefix}attention.output.dense.weight": rand(hidden, hidden),
        f"{prefix}attention.output.dense.bias": rand(hidden),
        f"{prefix}attention.output.LayerNorm.weight": np.ones(hidden, np.float32),
        f"{prefix}attention.output.LayerNorm.bias": np.zeros(hidden, np.float32),
        f"{prefix}intermediate.dense.weight": rand(inner, hidden),
        f"{prefix}intermediate.dense.bias": rand(inner),
        f"{prefix}output.dense.weight": rand(hidden, inner),
        f"{prefix}output.dense.bias": rand(hidden),
        f"{prefix}output.LayerNorm.weight": np.ones(hidden, np.float32),
        f"{prefix}output.LayerNorm.bias": np.zeros(hidden, np.float32),
    }
    write_safetensors(tmp_path / "model.safetensors", tensors)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n", encoding="utf-8")
    config = {
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 16,
    }
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return tmp_path


def test_safetensors_round_trip(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_safetensors(tmp_path / "t.safetensors", {"a": array, "b": array[0]})
    loaded = load_safetensors(tmp_path / "t.safetensors")
    np.testing.assert_array_equal(loaded["a"], array)
    np.testing.assert_array_equal(loaded["b"], array[0])


def test_wordpiece() -> None:
    tokenizer = WordPiece(VOCABULARY)
    ids = tokenizer.encode("Unaffable RUNNING! Café 天気 xyz", max_length=32)
    pieces = [VOCABULARY[i] for i in ids]
    assert pieces == [
        "[CLS]",
        "un",
        "##aff",
        "##able",
        "run",
        "##ning",
        "!",
        "cafe",
        "天",
        "気",
        "[UNK]",
        "[SEP]",
    ]
    assert len(tokenizer.encode("run " * 40, max_length=8)) == 8


def test_encoder_outputs_unit_vectors_independent_of_batching(tiny_model: Path) -> None:
    model = MiniLM(tiny_model, batch_size=2)
    texts = ["un run", "running! cafe unaffable", "天気"]
    together = model.encode(texts)
    assert together.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    one_by_one = np.stack([model.encode([text])[0] for text in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_load_encoder_uses_a_given_directory(tiny_model: Path) -> None:
    assert load_encoder(tiny_model).encode(["run"]).shape == (1, 8)


def test_matches_sentence_transformers_when_the_model_is_installed() -> None:
    model_dir = find_model_dir()
    if model_dir is None:
        pytest.skip("the semantic extra is not installed")
    model = MiniLM(model_dir)
    vectors = model.encode(
        [
            "That is a happy person",
            "That is a happy dog",
            "That is a very happy person",
            "Today is a sunny day",
        ]
    )
    # The similarities sentence-transformers documents for all-MiniLM-L6-v2.
    np.testing.assert_allclose(vectors[0] @ vectors[1:].T, [0.6946, 0.9429, 0.2569], atol=2e-4)


def test_single_threaded_blas_restores_the_thread_count() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    with single_threaded_blas():
        inside = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
        assert float((np.ones((4, 4), dtype=np.float32) @ np.ones(4, dtype=np.float32))[0]) == 4.0
    after = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    assert all(count == 1 for count in inside)
    assert after == before


@pytest.mark.parametrize("two_cores", [True, False])
def test_a_dense_layer_split_in_two_gives_the_whole_product(monkeypatch: pytest.MonkeyPatch, two_cores: bool) -> None:
    pool = ThreadPoolExecutor(max_workers=1) if two_cores else None
    monkeypatch.setattr(minilm, "_second_core", lambda: pool)
    rng = np.random.default_rng(7)
    weight = rng.standard_normal((384, 1536)).astype(np.float32)
    bias = rng.standard_normal(1536).astype(np.float32)
    x = rng.standard_normal((2, 31, 384)).astype(np.float32)
    out = minilm._Dense(weight, bias)(x)
    assert out.shape == (2, 31, 1536)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, x @ weight + bias, rtol=1e-5, atol=1e-5)
    if pool is not None:
        pool.shutdown()
