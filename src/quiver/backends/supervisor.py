"""All backends of a gateway: one task group owning their connections, and idle stops.

What happens to one backend over its lifetime is `managed.ManagedBackend`'s business.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from quiver.backends.managed import BackendFactory, BackendStatus, ManagedBackend, Observers
from quiver.config.models import AnyBackendConfig, QuiverConfig
from quiver.errors import QuiverError, UnknownBackendError

__all__ = ["BackendFactory", "BackendStatus", "ManagedBackend", "Observers", "Supervisor"]

logger = logging.getLogger(__name__)

# Idle checks run this often at most; a tighter idle timeout gets a proportionally tighter check.
MAX_REAP_INTERVAL = 15.0


@dataclass(frozen=True)
class Changes:
    added: list[str]
    removed: list[str]
    restarted: list[str]


class Supervisor:
    """All configured backends, with one task group owning their connections."""

    def __init__(self, config: QuiverConfig, factory: BackendFactory, observers: Observers) -> None:
        self.config = config
        self._factory = factory
        self._observers = observers
        self._backends: dict[str, ManagedBackend] = {}
        self._tg: TaskGroup | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Supervisor]:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._backends = {name: self._managed(name, cfg) for name, cfg in self.config.enabled_backends().items()}
            for managed in self._backends.values():
                if managed.config.autostart:
                    tg.start_soon(_start_quietly, managed)
            tg.start_soon(self._reap_idle)
            try:
                yield self
            finally:
                with anyio.CancelScope(shield=True):
                    await self.stop_all()
                tg.cancel_scope.cancel()
        self._tg = None

    def _managed(self, name: str, config: AnyBackendConfig) -> ManagedBackend:
        assert self._tg is not None
        return ManagedBackend(name, config, self.config.gateway, self._factory, self._observers, self._tg)

    def configure(self, config: QuiverConfig) -> Changes:
        """Apply a new config: add and remove backends, restart those whose identity changed.

        Backends whose identity (command, args, env, URL, ...) is unchanged keep their connection and
        take the new settings. A removed or replaced backend finishes its calls in flight (up to the
        drain timeout) before it is stopped.
        """
        wanted = config.enabled_backends()
        old = self._backends
        changes = Changes(
            added=[name for name in wanted if name not in old],
            removed=[name for name in old if name not in wanted],
            restarted=[
                name for name in wanted if name in old and wanted[name].fingerprint() != old[name].config.fingerprint()
            ],
        )
        self.config = config
        backends: dict[str, ManagedBackend] = {}
        for name, cfg in wanted.items():
            if name in old and name not in changes.restarted:
                old[name].configure(cfg, config.gateway)
                backends[name] = old[name]
            else:
                backends[name] = self._managed(name, cfg)
        self._backends = backends
        assert self._tg is not None
        for name in [*changes.removed, *changes.restarted]:
            self._tg.start_soon(old[name].retire, config.gateway.drain_timeout)
        for name in [*changes.added, *changes.restarted]:
            if backends[name].config.autostart:
                self._tg.start_soon(_start_quietly, backends[name])
        return changes

    def __contains__(self, name: str) -> bool:
        return name in self._backends

    def names(self) -> list[str]:
        return list(self._backends)

    def get(self, name: str) -> ManagedBackend:
        try:
            return self._backends[name]
        except KeyError:
            import difflib

            raise UnknownBackendError(name, difflib.get_close_matches(name, self._backends, n=3)) from None

    def statuses(self) -> list[BackendStatus]:
        return [managed.status() for managed in self._backends.values()]

    async def stop_all(self) -> None:
        async with anyio.create_task_group() as tg:
            for managed in self._backends.values():
                tg.start_soon(managed.stop)

    async def _reap_idle(self) -> None:
        while True:
            timeouts = [m.idle_timeout for m in self._backends.values() if m.idle_timeout > 0]
            await anyio.sleep(min(MAX_REAP_INTERVAL, max(0.05, min(timeouts, default=MAX_REAP_INTERVAL) / 4)))
            now = time.monotonic()
            for managed in self._backends.values():
                if managed.idle_timeout > 0 and managed.idle_for(now) >= managed.idle_timeout:
                    logger.info("backend %s idle for %.0fs; stopping it", managed.name, managed.idle_timeout)
                    assert self._tg is not None
                    self._tg.start_soon(managed.stop)


async def _start_quietly(managed: ManagedBackend) -> None:
    try:
        await managed.ensure_running()
    except QuiverError as exc:
        logger.warning("autostart of %s failed: %s", managed.name, exc.message)
