"""Tool search: the ranking engine shared by the gateway, the CLI and the evaluation command.

Importing this package is cheap: numpy, the stemmer and any embedding model load on the first
index or search.
"""

from quiver.search.engine import BackendInfo, Feedback, Hit, SearchDoc, SearchEngine, tokenize
from quiver.search.semantic import SemanticUnavailableError

__all__ = ["BackendInfo", "Feedback", "Hit", "SearchDoc", "SearchEngine", "SemanticUnavailableError", "tokenize"]
