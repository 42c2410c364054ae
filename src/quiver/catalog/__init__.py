"""The catalog: every known tool, its on-disk cache, cards and argument validation."""

from quiver.catalog.catalog import Catalog, Installable
from quiver.catalog.models import NOT_INSTALLED, Card, ToolEntry, summarize
from quiver.catalog.store import CatalogStore

__all__ = ["NOT_INSTALLED", "Card", "Catalog", "CatalogStore", "Installable", "ToolEntry", "summarize"]
