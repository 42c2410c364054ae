"""The catalog: every known tool, its on-disk cache, cards and argument validation."""

from quiver.catalog.catalog import Catalog
from quiver.catalog.models import Card, ToolEntry, summarize
from quiver.catalog.store import CatalogStore

__all__ = ["Card", "Catalog", "CatalogStore", "ToolEntry", "summarize"]
