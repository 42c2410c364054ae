"""Run the official MCP conformance suite against a server URL and summarise it per scenario.

Two suite versions are installed under `tools/node`: the stable 0.1.16 (handshake era only) and
0.2.0-alpha.12 (`conformance-next`, which adds the stateless 2026-07-28 era). The suite writes one
`checks.json` per scenario into its output directory; a scenario passes when none of its checks
is a FAILURE, which is how the suite's own summary counts it. WARNINGs (SHOULD-level gaps) are
kept apart: the suite's expected-failures baselines treat them as failures too.

Also a command line tool: `python -m tests.e2e.conformance URL [--era ERA ...]` prints a table.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.servers import NODE22_BIN, NODE_MODULES, free_port, stop, wait_for_port

REFERENCE_SERVER: Final = Path(__file__).resolve().parents[1] / "fixtures" / "conformance_server.py"

# A whole suite run takes a few seconds; this only stops a run that hangs.
RUN_TIMEOUT: Final = 600.0

# `<output>/server-<scenario>-<ISO timestamp with ':' and '.' replaced by '-'>/checks.json`
_RESULT_DIR: Final = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


@dataclass(frozen=True)
class Suite:
    """One installed version of the conformance package."""

    name: str
    package: Path

    @property
    def script(self) -> Path:
        return self.package / "dist" / "index.js"


STABLE: Final = Suite("0.1.16", NODE_MODULES / "@modelcontextprotocol" / "conformance")
NEXT: Final = Suite("0.2.0-alpha.12", NODE_MODULES / "conformance-next")


@dataclass(frozen=True)
class Era:
    """A suite version plus the arguments that select one protocol era's scenarios."""

    label: str
    suite: Suite
    args: tuple[str, ...] = ()
    requirements: str | None = None
    # Pending scenarios run, but no spec revision requires them yet.
    scored: bool = True

    def command_args(self) -> list[str]:
        if self.requirements is not None:
            return [*self.args, "--requirements", self.requirements]
        return list(self.args)


# The default ("active") suite excludes pending scenarios; in the alpha it also excludes the ones
# introduced by 2026-07-28, which `--requirements 2026-07-28` runs (with everything carried forward)
# at the 2026-07-28 wire, alongside extension and pending scenarios that it reports but never scores.
ERAS: Final[dict[str, Era]] = {
    era.label: era
    for era in (
        Era("stable", STABLE),
        Era("stable-pending", STABLE, ("--suite", "pending"), scored=False),
        Era("handshake", NEXT),
        Era("handshake-pending", NEXT, ("--suite", "pending", "--spec-version", "2025-11-25"), scored=False),
        Era("2026-07-28", NEXT, requirements="2026-07-28"),
    )
}


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    failures: tuple[str, ...]
    warnings: tuple[str, ...]
    counts: dict[str, int]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def clean(self) -> bool:
        """Passed without a SHOULD-level warning."""
        return self.passed and not self.warnings

    @property
    def status(self) -> str:
        if not self.passed:
            return "failed"
        if self.clean and not self.counts.get("SUCCESS"):
            return "skipped"
        return "passed" if self.clean else "passed with warnings"


@dataclass
class SuiteRun:
    era: Era
    url: str
    results: dict[str, ScenarioResult]
    scored: frozenset[str]
    seconds: float
    returncode: int
    output: str = field(repr=False)

    @property
    def unscored(self) -> frozenset[str]:
        return frozenset(self.results) - self.scored

    @property
    def missing(self) -> frozenset[str]:
        """Scored scenarios that left no result (the suite crashed or skipped them)."""
        return self.scored - frozenset(self.results)

    def failing(self, *, strict: bool = False) -> dict[str, ScenarioResult]:
        """Scored scenarios that failed (with `strict`, also those with warnings)."""
        return {
            name: result
            for name, result in self.results.items()
            if name in self.scored and not (result.clean if strict else result.passed)
        }


def node() -> Path:
    binary = NODE22_BIN / "node"
    if not binary.exists():
        raise FileNotFoundError(f"Node 22 is missing at {binary}; run `make setup`")
    return binary


def _run_node(suite: Suite, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    if not suite.script.exists():
        raise FileNotFoundError(f"conformance suite {suite.name} is missing at {suite.script}; run `make setup`")
    return subprocess.run(
        [str(node()), str(suite.script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def required_scenarios(suite: Suite, revision: str) -> frozenset[str]:
    """The server scenarios a spec revision requires (the ones `--requirements` scores)."""
    listing = _run_node(suite, ["list", "--server", "--requirements", revision], timeout=60).stdout
    names: set[str] = set()
    in_server_section = False
    for line in listing.splitlines():
        if line.startswith("Server scenarios"):
            in_server_section = True
        elif line and not line.startswith(" "):
            in_server_section = False
        elif in_server_section and line.strip().startswith("- "):
            names.add(line.strip()[2:].split()[0])
    return frozenset(names)


def read_results(output_dir: Path) -> dict[str, ScenarioResult]:
    results: dict[str, ScenarioResult] = {}
    for checks_file in sorted(output_dir.glob("*/checks.json")):
        match = _RESULT_DIR.match(checks_file.parent.name)
        if match is None:
            continue
        checks: list[dict[str, Any]] = json.loads(checks_file.read_text())
        results[match["scenario"]] = summarise(match["scenario"], checks)
    return results


def summarise(scenario: str, checks: list[dict[str, Any]]) -> ScenarioResult:
    counts: dict[str, int] = {}
    for check in checks:
        counts[check["status"]] = counts.get(check["status"], 0) + 1

    def messages(status: str) -> tuple[str, ...]:
        return tuple(
            f"{check['id']}: {check.get('errorMessage') or check.get('description', '')}"
            for check in checks
            if check["status"] == status
        )

    return ScenarioResult(scenario, messages("FAILURE"), messages("WARNING"), counts)


def run_suite(
    url: str,
    era: Era | str,
    *,
    scenario: str | None = None,
    output_dir: Path | None = None,
    timeout: float = RUN_TIMEOUT,
) -> SuiteRun:
    """Run one era's scenarios (or one `scenario`) against `url` and read back every result."""
    era = ERAS[era] if isinstance(era, str) else era
    with tempfile.TemporaryDirectory(prefix="conformance-") as scratch:
        out = output_dir or Path(scratch)
        args = ["server", "--url", url, "-o", str(out)]
        args += ["--scenario", scenario, *_scenario_version(era)] if scenario else era.command_args()
        started = time.monotonic()
        completed = _run_node(era.suite, args, timeout)
        seconds = time.monotonic() - started
        results = read_results(out)
    if not era.scored:
        scored: frozenset[str] = frozenset()
    elif era.requirements is not None:
        scored = required_scenarios(era.suite, era.requirements)
    else:
        scored = frozenset(results)
    if scenario is not None:
        scored &= {scenario}
    return SuiteRun(era, url, results, scored, seconds, completed.returncode, completed.stdout + completed.stderr)


def _scenario_version(era: Era) -> list[str]:
    # A single scenario runs at its own default version unless the era pins one.
    if era.requirements is not None:
        return ["--spec-version", era.requirements]
    if "--spec-version" in era.args:
        index = era.args.index("--spec-version")
        return list(era.args[index : index + 2])
    return []


@contextmanager
def reference_server_http() -> Iterator[str]:
    """The reference server over streamable HTTP; yields its MCP endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REFERENCE_SERVER), "http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(proc)


def table(runs: list[SuiteRun]) -> str:
    """A markdown table: one row per scenario, one column per run."""
    names = sorted({name for run in runs for name in run.results})
    header = "| scenario | " + " | ".join(run.era.label for run in runs) + " |"
    rows = [header, "|" + " --- |" * (len(runs) + 1)]
    for name in names:
        cells = []
        for run in runs:
            result = run.results.get(name)
            if result is None:
                cells.append("")
                continue
            cell = result.status
            if name not in run.scored:
                cell += " (not scored)"
            cells.append(cell)
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the MCP conformance suite and print a per-scenario table.")
    parser.add_argument("url", nargs="?", help="MCP endpoint; the reference server is started when omitted")
    parser.add_argument("--era", action="append", choices=sorted(ERAS), help="repeatable; default: every era")
    args = parser.parse_args(argv)
    labels: list[str] = args.era or list(ERAS)

    def run_all(url: str) -> list[SuiteRun]:
        return [run_suite(url, label) for label in labels]

    if args.url:
        runs = run_all(args.url)
    else:
        with reference_server_http() as url:
            runs = run_all(url)
    print(table(runs))
    for run in runs:
        failing = len(run.failing()) + len(run.missing)
        counts = f"{len(run.results)} run, {len(run.scored)} scored, {failing} failing"
        print(f"\n{run.era.label}: {counts}, {run.seconds:.1f}s")
        for name, result in sorted(run.failing(strict=True).items()):
            print(f"  {name}: {'; '.join(result.failures + result.warnings)}")
    return 1 if any(run.failing() or run.missing for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
