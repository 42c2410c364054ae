"""The official conformance suite against Quiver in aggregate mode, fronting the reference server.

The reference server (tests/fixtures/conformance_server.py) passes every scenario on its own
(test_conformance_reference.py); here it runs as a stdio backend behind `quiver serve`, listed
without a prefix (`namespace: false`) because the suite looks its tools up by name. Whatever
fails here fails because of the gateway. Scenario counts are recorded in docs/CONFORMANCE.md.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conformance import ERAS, REFERENCE_SERVER, SuiteRun, run_suite
from tests.e2e.gateway_proc import quiver_serve
from tests.e2e.test_conformance_reference import PENDING, PENDING_2026, SCORED_COUNTS, SCORED_ERAS, problems
from tests.servers import write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SuiteRun]]:
    """Every era once through one gateway (its catalog starts cold: nothing is cached)."""
    config = write_config(
        tmp_path_factory.mktemp("gateway") / "quiver.json",
        {"reference": {"command": sys.executable, "args": [str(REFERENCE_SERVER), "stdio"], "namespace": False}},
        exposure="aggregate",
    )
    with quiver_serve(Path(config)) as served:
        yield {label: run_suite(served.url, label) for label in ERAS}


@pytest.mark.parametrize("era", SCORED_ERAS)
def test_every_scored_scenario_passes_through_the_gateway(runs: dict[str, SuiteRun], era: str) -> None:
    run = runs[era]
    assert problems(run, run.scored, strict=True) == {}, run.output
    assert len(run.scored) == SCORED_COUNTS[era]


def test_pending_scenarios_pass_through_the_gateway(runs: dict[str, SuiteRun]) -> None:
    assert problems(runs["handshake-pending"], PENDING, strict=False) == {}
    assert problems(runs["2026-07-28"], PENDING_2026, strict=False) == {}
