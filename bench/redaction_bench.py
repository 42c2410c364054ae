"""Redaction benchmark: what masking secrets costs on large tool results.

    .venv/bin/python bench/redaction_bench.py [--repeat N]

Each input is about 1 MB; the table shows the best and median time of `--repeat` runs with
the built-in rules and a few configured secrets. Inputs: log-like prose (ASCII and with
accents), pretty-printed JSON text, a base64 data URI, the same JSON as structured content
(about 30,000 strings), and a text dense with secrets (one per 500 bytes).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import mcp_types as types

from quiver.policy.redaction import Redactor

SIZE = 1_000_000
WORDS = [
    "the",
    "request",
    "for",
    "file",
    "path",
    "returned",
    "status",
    "error",
    "value",
    "line",
    "data",
    "user",
    "token",
    "session",
    "cache",
]


def prose(rng: random.Random, accents: bool = False) -> str:
    words = [*WORDS, "café", "naïve", "Zürich"] if accents else WORDS
    lines: list[str] = []
    size = 0
    while size < SIZE:
        line = (
            " ".join(rng.choice(words) for _ in range(12)) + f" id={rng.randrange(10**9)} sha={rng.randbytes(20).hex()}"
        )
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def records(rng: random.Random) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    size = 0
    while size < SIZE:
        item = {
            "id": rng.randbytes(16).hex(),
            "name": " ".join(rng.choice(WORDS) for _ in range(3)),
            "path": f"/srv/data/{rng.randrange(10**6)}.json",
            "status": rng.choice(["ok", "failed", "pending"]),
            "size": rng.randrange(10**7),
        }
        items.append(item)
        size += len(json.dumps(item))
    return items


def dense(rng: random.Random) -> str:
    samples = [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "A1b2C3d4" * 4 + "E5f6",
        "postgres://app:hunter22@db:5432/app",
        'password="correct horse"',
        "Authorization: Bearer " + "abcDEF123" * 3,
    ]
    parts: list[str] = []
    size = 0
    while size < SIZE:
        part = " ".join(rng.choice(WORDS) for _ in range(60)) + " " + rng.choice(samples) + "\n"
        parts.append(part)
        size += len(part)
    return "".join(parts)


def measure(label: str, run: Callable[[], int], repeat: int) -> None:
    times: list[float] = []
    found = 0
    for _ in range(repeat):
        started = time.perf_counter()
        found = run()
        times.append((time.perf_counter() - started) * 1000)
    print(f"{label:<44} {min(times):8.2f} {statistics.median(times):8.2f} {found:8d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    rng = random.Random(0)
    redactor = Redactor(secrets=["s3cr3t-from-config", "another-configured-value", "hunter22"])
    ascii_text = prose(rng)
    accented = prose(rng, accents=True)
    items = records(rng)
    json_text = json.dumps(items, indent=2)
    data_uri = "data:image/png;base64," + base64.b64encode(rng.randbytes(SIZE * 3 // 4)).decode()
    secrets_text = dense(rng)
    result = types.CallToolResult(
        content=[types.TextContent(type="text", text=json_text)], structured_content={"items": items}
    )
    strings = sum(len(item) - 1 for item in items)

    print(f"{'input (about 1 MB each)':<44} {'best ms':>8} {'median':>8} {'masked':>8}")
    measure("log-like text, ASCII", lambda: redactor.redact_text(ascii_text)[1], args.repeat)
    measure("log-like text, with accents", lambda: redactor.redact_text(accented)[1], args.repeat)
    measure("pretty-printed JSON text", lambda: redactor.redact_text(json_text)[1], args.repeat)
    measure("base64 data URI", lambda: redactor.redact_text(data_uri)[1], args.repeat)
    measure("text with a secret every 500 bytes", lambda: redactor.redact_text(secrets_text)[1], args.repeat)
    measure(f"structured content, {strings:,} strings", lambda: redactor.redact_value(items)[1], args.repeat)
    measure("result: JSON text + structured content", lambda: redactor.redact_result(result)[1], args.repeat)


if __name__ == "__main__":
    main()
