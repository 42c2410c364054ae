"""Tool search: the ranking engine shared by the gateway, the CLI and the evaluation command."""

from quiver.search.engine import BackendInfo, Hit, SearchDoc, SearchEngine, tokenize

__all__ = ["BackendInfo", "Hit", "SearchDoc", "SearchEngine", "tokenize"]
