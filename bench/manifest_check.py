"""Re-verify the bundled server manifest against the package registries (uses the network; not a test).

    .venv/bin/python bench/manifest_check.py [--manifest FILE] [--only NAME ...] [--no-download] [--jobs N]

For every npm entry, `npm view PKG@VERSION` must answer, its `bin` must contain the entry's bin,
and its engines.node must match the one recorded. For every PyPI entry, `pip index versions`
must list the recorded version, and (unless --no-download) the wheel `pip download --no-deps`
fetches must declare the entry point as a console script and the recorded Requires-Python.
Remote entries are only listed: this script talks to registries, not to hosted servers.
"moved" means a newer release exists (the entry still works); "missing" and "mismatch" fail
the run with exit status 1.
"""

from __future__ import annotations

import argparse
import configparser
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from quiver.provisioning import ManifestEntry, NpmInstall, PypiInstall, load_manifest

REGISTRY_TIMEOUT = 300  # seconds for one registry call; a large wheel on a slow link takes a while
PYTHONS = ("3.11", "3.12", "3.13", "3.14")  # the interpreters a PyPI entry may ask for, oldest first
FAILING = ("missing", "mismatch")


@dataclass
class Result:
    name: str
    kind: str
    package: str
    status: str = "ok"  # ok | moved | missing | mismatch | listed
    notes: list[str] = field(default_factory=list)

    def flag(self, status: str, note: str) -> None:
        rank = ("ok", "listed", "moved", "mismatch", "missing")
        if rank.index(status) > rank.index(self.status):
            self.status = status
        self.notes.append(note)


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=REGISTRY_TIMEOUT, check=False)


def check_npm(entry: ManifestEntry, spec: NpmInstall) -> Result:
    result = Result(entry.name, "npm", spec.package)
    target = f"{spec.package}@{spec.version}" if spec.version else spec.package
    fields = ["name", "version", "bin", "engines", "dist-tags", "deprecated"]
    done = _run(["npm", "view", target, *fields, "--json"])
    info = _json_object(done.stdout)
    if done.returncode != 0 or info is None:
        result.flag("missing", f"npm view {target} failed: {_error_line(done.stderr)}")
        return result
    bins = _npm_bins(spec.package, info.get("bin"))
    if spec.bin_name not in bins:
        result.flag("mismatch", f"bin '{spec.bin_name}' not in {sorted(bins) or 'no bins'}")
    node = (info.get("engines") or {}).get("node") if isinstance(info.get("engines"), dict) else None
    if node != spec.node:
        result.flag("mismatch", f"engines.node is {node!r}, manifest says {spec.node!r}")
    latest = (info.get("dist-tags") or {}).get("latest")
    if latest and spec.version and latest != spec.version:
        result.flag("moved", f"latest is {latest}")
    if info.get("deprecated"):
        result.flag("moved", f"deprecated: {str(info['deprecated'])[:120]}")
    return result


def _npm_bins(package: str, raw: Any) -> set[str]:
    if isinstance(raw, str):
        return {package.rsplit("/", 1)[-1]}
    return set(raw) if isinstance(raw, dict) else set()


def check_pypi(entry: ManifestEntry, spec: PypiInstall, *, download: bool) -> Result:
    result = Result(entry.name, "pypi", spec.package)
    python = _python_for(spec.python)
    command = [sys.executable, "-m", "pip", "index", "versions", spec.package, "--json", "--python-version", python]
    if spec.version and Version(spec.version).is_prerelease:
        command.append("--pre")  # otherwise pip hides the very release the entry records
    done = _run(command)
    info = _json_object(done.stdout)
    if done.returncode != 0 or info is None:
        result.flag("missing", f"pip index versions {spec.package} failed: {_error_line(done.stderr)}")
        return result
    versions = [str(v) for v in info.get("versions", [])]
    if spec.version and spec.version not in versions:
        result.flag("missing", f"version {spec.version} not on the index for Python {python}")
        return result
    latest = info.get("latest")
    if latest and spec.version and latest != spec.version:
        result.flag("moved", f"latest is {latest}")
    if download:
        _check_wheel(result, spec, python)
    return result


def _check_wheel(result: Result, spec: PypiInstall, python: str) -> None:
    requirement = f"{spec.package}=={spec.version}" if spec.version else spec.package
    with tempfile.TemporaryDirectory(prefix="quiver-manifest-") as tmp:
        pip_download = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--pre"]
        done = _run([*pip_download, "--python-version", python, "-q", "-d", tmp, requirement])
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            result.flag("mismatch", f"no wheel for {requirement}: {_error_line(done.stderr)}")
            return
        scripts, requires_python = _wheel_metadata(wheels[0])
    if spec.script not in scripts:
        result.flag("mismatch", f"entry point '{spec.script}' not in {sorted(scripts) or 'no console scripts'}")
    if requires_python != spec.python:
        result.flag("mismatch", f"Requires-Python is {requires_python!r}, manifest says {spec.python!r}")


def _wheel_metadata(wheel: Path) -> tuple[set[str], str | None]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # script names are case-sensitive
        if entry_points:
            parser.read_string(archive.read(entry_points).decode())
        headers = HeaderParser().parsestr(archive.read(metadata).decode(errors="replace"))
    scripts = set(parser["console_scripts"]) if parser.has_section("console_scripts") else set()
    return scripts, headers.get("Requires-Python")


def _python_for(requires: str | None) -> str:
    """The oldest interpreter version the entry's Requires-Python admits (what pip should resolve for)."""
    if not requires:
        return PYTHONS[0]
    try:
        allowed = SpecifierSet(requires)
    except InvalidSpecifier:
        return PYTHONS[0]
    return next((version for version in PYTHONS if allowed.contains(f"{version}.0")), PYTHONS[-1])


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(data, list):  # npm answers a list when several versions match
        data = data[-1] if data else None
    return data if isinstance(data, dict) else None


def _error_line(text: str) -> str:
    """The line of a client's stderr that says what went wrong, not its log-file pointer or warnings."""
    noise = ("WARNING: Location", "npm warn", "npm error A complete log")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(noise)]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0][:200]


def check(entry: ManifestEntry, *, download: bool) -> Result:
    spec = entry.install.spec
    if isinstance(spec, NpmInstall):
        return check_npm(entry, spec)
    if isinstance(spec, PypiInstall):
        return check_pypi(entry, spec, download=download)
    return Result(entry.name, "remote", spec.url, status="listed", notes=["hosted; not contacted"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--manifest", type=Path, help="a manifest file instead of the bundled one")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="check only these entries")
    parser.add_argument("--no-download", action="store_true", help="skip wheel downloads (no entry-point check)")
    parser.add_argument("--jobs", type=int, default=4, help="registry calls in flight at once (default 4)")
    args = parser.parse_args(argv)
    if shutil.which("npm") is None:
        print("npm is not on PATH: install Node.js and npm to check the npm entries", file=sys.stderr)
        return 2
    manifest = load_manifest(args.manifest)
    entries = [manifest.entry(name) for name in args.only] if args.only else list(manifest)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda entry: check(entry, download=not args.no_download), entries))
    width = max(len(result.name) for result in results)
    for result in results:
        notes = "; ".join(result.notes)
        print(f"{result.status:<8} {result.kind:<6} {result.name:<{width}}  {result.package}  {notes}".rstrip())
    counts = Counter(result.status for result in results)
    print()
    print(f"{len(results)} entries: " + ", ".join(f"{count} {status}" for status, count in sorted(counts.items())))
    failing = [result for result in results if result.status in FAILING]
    for result in failing:
        print(f"FAIL {result.name}: {'; '.join(result.notes)}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
