"""Text analysis shared by documents and queries: the terms a tool is indexed and searched by.

Both sides go through the same steps so that they meet: URLs and file paths are reduced to the
words that carry meaning (a host's labels; a file's name and its format), identifiers are split
at snake_case, kebab-case and camelCase boundaries, function words are dropped and the rest is
Snowball-stemmed. Queries additionally lose request filler ("please help me") and gain a few
low-weight synonyms for the verbs and nouns tool names are built from.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

# A maximal run of letters and digits; punctuation and underscores separate words.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# The parts of an identifier: acronyms ("HTTPServer" -> HTTP), capitalised or lower-case words,
# digit runs, and runs of letters without case (CJK and the like).
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^\W\d_A-Za-z]+", re.UNICODE)
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`)\]]+|\bwww\.[^\s<>\"'`)\]]+", re.IGNORECASE)
# An absolute, home-relative or dot-relative POSIX path, or a Windows path.
_PATH = re.compile(r"(?<![\w/:.])(?:~|\.{1,2})?(?:/[\w.\-]+)+/?|\b[A-Za-z]:\\[^\s]+")

# What a file extension says in words, so "report.pptx" meets "PowerPoint presentation".
EXTENSION_WORDS: dict[str, str] = {
    "md": "markdown",
    "markdown": "markdown",
    "ppt": "powerpoint presentation",
    "pptx": "powerpoint presentation",
    "doc": "word document",
    "docx": "word document",
    "odt": "document",
    "xls": "excel spreadsheet",
    "xlsx": "excel spreadsheet",
    "ods": "spreadsheet",
    "csv": "csv table",
    "tsv": "tsv table",
    "pdf": "pdf",
    "txt": "text",
    "log": "log text",
    "json": "json",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "xml": "xml",
    "html": "html",
    "htm": "html",
    "png": "image",
    "jpg": "image",
    "jpeg": "image",
    "gif": "image",
    "webp": "image",
    "svg": "svg image",
    "mp3": "audio",
    "wav": "audio",
    "flac": "audio",
    "ogg": "audio",
    "mp4": "video",
    "mov": "video",
    "webm": "video",
    "py": "python",
    "js": "javascript",
    "ts": "typescript",
    "tsx": "typescript react",
    "jsx": "javascript react",
    "java": "java",
    "go": "go",
    "rs": "rust",
    "rb": "ruby",
    "sql": "sql",
    "ipynb": "notebook",
    "zip": "archive",
    "tar": "archive",
    "gz": "archive",
    "bib": "bibtex",
}
_FILENAME = re.compile(r"\b[\w\-]+\.(" + "|".join(sorted(EXTENSION_WORDS, key=len, reverse=True)) + r")\b")
# Host labels that say nothing about a site.
_URL_NOISE = frozenset({"www", "com", "org", "net", "io", "http", "https", "html", "htm", "index", "php"})


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP_WORDS = _word_set(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each eg etc few for
    from further had has have having he her here hers herself him himself his how i ie if in into
    is it its itself just may me might more most must my myself no nor not of off on once only or
    other our ours ourselves out over own same shall she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very
    via was we were what when where which while who whom why will with would you your yours
    yourself yourselves
    """
)
# Words of a request rather than of the need ("please help me ..."); dropped from queries only.
QUERY_FILLER = _word_set(
    """
    help please kindly want need like let know tell give thanks thank hi hello something
    anything everything someone somebody sure
    """
)
# Verbs and nouns that tool names are built from, in groups of near-synonyms. A query word adds
# the rest of its group at a low weight, so "save the report" also reaches `write_file`.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = tuple(
    tuple(line.split())
    for line in """
    create make new generate build add compose draft produce
    get fetch retrieve obtain read load
    show view display
    search find query lookup seek discover
    list enumerate browse
    update edit modify change set patch alter
    delete remove erase drop clear purge
    write save store persist export record
    send post publish share notify
    run execute launch invoke start
    stop kill terminate halt cancel
    upload attach
    convert transform
    summarize summary digest overview
    analyze analysis analyse inspect examine evaluate assess
    compare diff difference
    calculate compute arithmetic
    schedule calendar appointment
    price cost value quote
    image picture photo photograph
    chart graph plot diagram visualize visualization
    document doc docs
    directory folder
    map location place
    weather forecast
    news headlines
    paper article publication
    video clip
    audio sound music
    email mail inbox
    message chat
    repository repo
    website webpage site page
    table spreadsheet sheet
    presentation slides slideshow deck powerpoint
    """.strip().splitlines()
)
SYNONYM_WEIGHT = 0.35  # below 1 so a synonym never outweighs the word the user wrote
MIN_TERM_LENGTH = 2  # single letters ("s" of "today's", "v" of "?v=") match noise; digits are kept


@lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    # PyStemmer (the Snowball stemmers, compiled) loads on first use to keep imports cheap.
    stemmer_module = importlib.import_module("Stemmer")
    stem_word: Callable[[str], str] = stemmer_module.Stemmer("english").stemWord
    return stem_word


_STEMS: dict[str, str] = {}
_MAX_STEM_CACHE = 200_000  # words; a catalogue of 10,000 tools has ~40,000 distinct ones


def stem(word: str) -> str:
    """The Snowball (Porter2) stem of a lower-cased word, cached."""
    cached = _STEMS.get(word)
    if cached is None:
        cached = _stemmer()(word)
        if len(_STEMS) < _MAX_STEM_CACHE:
            _STEMS[word] = cached
    return cached


def _url_words(match: re.Match[str]) -> str:
    host = re.sub(r"^(?:https?|ftp)://", "", match.group(0), flags=re.IGNORECASE).split("/")[0]
    labels = [label for label in host.split(":")[0].split(".") if label.lower() not in _URL_NOISE]
    return f" url {' '.join(labels)} "


def _file_words(base: str, extension: str) -> str:
    return f" file {base} {EXTENSION_WORDS.get(extension.lower(), extension)} "


def _path_words(match: re.Match[str]) -> str:
    path = match.group(0).rstrip("/\\")
    base = re.split(r"[\\/]", path)[-1]
    stem_part, dot, extension = base.rpartition(".")
    if dot and extension.lower() in EXTENSION_WORDS:
        return _file_words(stem_part, extension)
    if dot and stem_part:
        return f" file {base} "
    return f" directory {base} "


def _filename_words(match: re.Match[str]) -> str:
    extension = match.group(1)
    return _file_words(match.group(0)[: -len(extension) - 1], extension)


def normalize(text: str) -> str:
    """Replace URLs and file paths by the words that describe them."""
    if "/" in text or "\\" in text or "www." in text:
        text = _URL.sub(_url_words, text)
        text = _PATH.sub(_path_words, text)
    if "." in text:
        text = _FILENAME.sub(_filename_words, text)
    return text


def words(text: str, *, whole_camel: bool = True) -> Iterator[str]:
    """Lower-cased words with identifiers split; a camelCase word also yields itself whole."""
    for run in _WORD.findall(text):
        parts = _PART.findall(run)
        if len(parts) > 1:
            yield from (part.lower() for part in parts)
            if whole_camel and not any(part.isdigit() for part in parts):
                yield run.lower()
        elif parts:
            yield parts[0].lower()
        else:
            yield run.lower()


@lru_cache(maxsize=1)
def _synonyms() -> dict[str, tuple[str, ...]]:
    table: dict[str, set[str]] = {}
    for group in SYNONYM_GROUPS:
        stems = {stem(word) for word in group}
        for term in stems:
            table.setdefault(term, set()).update(stems - {term})
    return {term: tuple(sorted(others)) for term, others in table.items()}


@dataclass(frozen=True, slots=True)
class Analyzer:
    """The analysis steps, each of which can be switched off (to measure what it is worth)."""

    normalize: bool = True  # URLs and paths to words
    whole_camel: bool = True  # "GitHub" -> git, hub and github
    stop_words: bool = True
    stemming: bool = True
    query_filler: bool = True
    synonyms: bool = True

    def _terms(self, text: str, drop: frozenset[str]) -> Iterator[str]:
        if self.normalize:
            text = normalize(text)
        for word in words(text, whole_camel=self.whole_camel):
            if len(word) < MIN_TERM_LENGTH and not word.isdigit():
                continue
            if word in drop:
                continue
            yield stem(word) if self.stemming else word

    def tokenize(self, text: str) -> list[str]:
        """The index terms of a text."""
        return list(self._terms(text, STOP_WORDS if self.stop_words else frozenset()))

    def query_terms(self, text: str) -> dict[str, float]:
        """The weighted terms of a query: its own words at 1, their synonyms at `SYNONYM_WEIGHT`."""
        drop = (STOP_WORDS if self.stop_words else frozenset()) | (QUERY_FILLER if self.query_filler else frozenset())
        terms = dict.fromkeys(self._terms(text, drop), 1.0)
        if self.synonyms and self.stemming:
            table = _synonyms()
            for term in list(terms):
                for other in table.get(term, ()):
                    terms.setdefault(other, SYNONYM_WEIGHT)
        return terms


DEFAULT_ANALYZER = Analyzer()


def tokenize(text: str) -> list[str]:
    """The index terms of a text: normalised, split, without stop words, stemmed."""
    return DEFAULT_ANALYZER.tokenize(text)


def query_terms(text: str) -> dict[str, float]:
    """The weighted terms of a query (see `Analyzer.query_terms`)."""
    return DEFAULT_ANALYZER.query_terms(text)
