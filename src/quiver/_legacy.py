"""Using protocol features the SDK marks deprecated as of 2026-07-28.

Quiver bridges both protocol eras, so it deliberately uses the handshake-era forms of
logging, sampling, roots and resource subscriptions with clients and servers that speak that
era. The SDK warns on each use; these uses are intended, so the warning is silenced where they
happen (and only there).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def legacy_features() -> Iterator[None]:
    from mcp.shared.exceptions import MCPDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        yield
