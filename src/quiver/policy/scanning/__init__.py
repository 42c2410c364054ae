"""Tool-poisoning scan: rule objects over every string of a tool definition, pure and without I/O
(except `scan_catalogue`, which reads the file it is given).

Each rule has a stable code (`QP001`...), a default severity and a `check(tool, context)`;
`scan_tool` runs them all and reports the worst severity. At or above the configured quarantine
severity a tool is hidden until an operator approves it. The rules are listed in docs/SECURITY.md.
"""

from quiver.policy.scanning.model import Finding, Level, Rule, ScanContext, ScanResult, Text
from quiver.policy.scanning.scanner import (
    RULES,
    read_catalogue,
    scan_catalogue,
    scan_context,
    scan_entries,
    scan_tool,
    sibling_names,
)

__all__ = [
    "RULES",
    "Finding",
    "Level",
    "Rule",
    "ScanContext",
    "ScanResult",
    "Text",
    "read_catalogue",
    "scan_catalogue",
    "scan_context",
    "scan_entries",
    "scan_tool",
    "sibling_names",
]
