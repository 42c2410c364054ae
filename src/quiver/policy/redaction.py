"""Masking secrets in what flows back from downstream servers, and in Quiver's own logs.

A `Redactor` finds secrets by three means: built-in rules for well-known credential formats,
regular expressions from `policy.redaction.patterns`, and the exact values of secrets in
Quiver's own config. Every rule is searched over the whole text first and the matches are
then replaced in one pass, so masks are never matched again and overlapping finds become one
mask. Each built-in rule starts with a literal (case-insensitive ones are matched against the
lowercased text), which lets the regex engine skip to candidates: a megabyte costs about 10 ms,
a typical result a tenth of a millisecond (`bench/redaction_bench.py`).
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import mcp_types as types

from quiver.config.policy import Redaction
from quiver.errors import ConfigError

MASK_PREFIX = "[REDACTED:"
CONFIGURED_SECRET = "configured-secret"
"""The name under which exact secret values from Quiver's config are counted."""

# Shorter values are too likely to be ordinary words or numbers to mask wherever they occur.
MIN_SECRET_CHARS = 6

# Joins the strings of one JSON value so that they are searched in one pass: no built-in rule
# matches across a line break followed by NUL, and a match that would is redone per string.
_JOIN = "\n\x00\n"


@dataclass(frozen=True, slots=True)
class Rule:
    """A named secret format. Only the groups named `secret…` are masked if the regex has any.

    Each pattern starts with a literal that is rare in ordinary text, often from the middle of
    the secret's prefix with the rest checked by a lookbehind: the regex engine then skips from
    candidate to candidate, some ten times faster than trying every position. `lead` counts the
    characters of the secret before the match (a whole-match rule's mask starts that early).
    A `folded` rule is written in lowercase and matches case-insensitively: it runs on the
    lowercased text, where its leading literal still works.
    """

    name: str
    pattern: str
    folded: bool = False
    lead: int = 0


def mask(name: str) -> str:
    return f"{MASK_PREFIX}{name}]"


def _after(*words: str) -> str:
    """A group that admits the position after any of `words` (lookbehinds of fixed width each)."""
    return "(?:" + "|".join(f"(?<={word})" for word in words) + ")"


def _not_after(word: str, *prefixes: str) -> str:
    """Lookbehinds, placed after `word`, that reject it as the tail of any of `prefixes`."""
    return "".join(f"(?<!{re.escape(prefix + sep + word)})" for prefix in prefixes for sep in ("", "_", "-"))


# A value after `key=` or `key: ` in config-like text, unless it is a placeholder or a JSON literal. A quoted
# value runs to its closing quote or the end of the line: a match never fails after a long scan.
_PLACEHOLDER = r"(?!(?:null|none|true|false|undefined)\b|\$\{|\{\{|\*{3}|<|\[redacted:)"
_ASSIGNED_VALUE = (
    r"[\"']?[ \t]*[:=][ \t]*(?:"
    rf"\"{_PLACEHOLDER}(?P<secret>(?:[^\"\\\r\n]|\\.){{3,}})\"?"
    rf"|'{_PLACEHOLDER}(?P<secret2>[^'\r\n]{{3,}})'?"
    rf"|{_PLACEHOLDER}(?P<secret3>[^\s\"',;&<>{{}}\[\]()]{{3,}}))"
)
# A PEM block: BEGIN line, body, END line. Possessive repeats never give back what they took, so a
# block without its END line costs one scan of its body, whatever the input.
_PEM_BEGIN = r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_PEM_HEADER = r"(?:Proc-Type|DEK-Info|Comment|Version):[^\r\n\\]*+"
_PEM_NEWLINE = r"(?:\r?\n|(?:\\r)?\\n)"  # or escaped, as inside JSON
_PEM_END = r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
# Tokens that page through results or report progress rather than grant access.
_PAGING = ("page", "nextpage", "next", "continuation", "sync", "cursor", "progress")
# Where a token-like secret may not continue.
_TOKEN_END = r"(?![A-Za-z0-9_\-])"

BUILTIN_RULES: tuple[Rule, ...] = (
    Rule(
        "private-key",
        _PEM_BEGIN
        + rf"(?:(?:{_PEM_HEADER}|[A-Za-z0-9+/=\s]|\\[nrt])*+{_PEM_END}"  # the whole block
        + rf"|(?:{_PEM_NEWLINE}(?:{_PEM_HEADER}|[A-Za-z0-9+/=]*+(?=[\r\n\\\"]|$)))*+)",  # or what is left: whole lines
    ),
    Rule(
        "jwt",
        r"J(?<=eyJ)(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\."
        r"(?:[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+){0,2})?",
        lead=2,
    ),
    Rule("aws-access-key-id", r"A(?<![A-Za-z0-9]A)(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    Rule(
        "aws-secret-access-key",
        "key"
        + _after("secretaccesskey", "secret_access_key", "secret-access-key")
        + r"[\"']?[ \t]*[:=][ \t]*[\"']?(?P<secret>[a-z0-9/+]{40})(?![a-z0-9/+=])",
        folded=True,
    ),
    Rule("gcp-api-key", r"AIza(?<![A-Za-z0-9_\-]AIza)[A-Za-z0-9_\-]{35}" + _TOKEN_END),
    Rule(
        "azure-account-key",
        r"key=(?:(?<=accountkey=)(?P<secret>[a-z0-9+/]{40,}={0,2})|(?<=sharedaccesskey=)(?P<secret2>[a-z0-9+/]{30,}={0,2}))",
        folded=True,
    ),
    Rule("azure-sas-token", r"g=(?<=sig=)(?<![a-z0-9_]sig=)(?P<secret>[a-z0-9%+/]{30,}(?:%3d|=){0,2})", folded=True),
    Rule(
        "github-token",
        r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{36,251}|ithub_pat_[A-Za-z0-9_]{50,251})(?![A-Za-z0-9_])",
    ),
    Rule("gitlab-token", r"gl(?<![A-Za-z0-9_]gl)(?:pat|dt|rt|ptt|ft|soat)-[A-Za-z0-9_\-]{20,}"),
    Rule("slack-token", r"xox(?<![A-Za-z0-9_]xox)[abprse]-[A-Za-z0-9\-]{10,}"),
    Rule(
        "slack-webhook",
        r"k\.com/(?<=hooks\.slack\.com/)(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/\-]{20,})",
    ),
    Rule("stripe-key", r"k_(?<![A-Za-z0-9_][rs]k_)(?<=[rs]k_)(?:live|test)_[A-Za-z0-9]{16,}", lead=1),
    Rule("anthropic-key", r"k-ant-(?<![A-Za-z0-9_\-]sk-ant-)(?<=sk-ant-)[a-z]+[0-9]*-[A-Za-z0-9_\-]{32,}", lead=1),
    Rule(
        "openai-key",
        r"k-(?<![A-Za-z0-9_\-]sk-)(?<=sk-)(?:(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{32,}|[A-Za-z0-9]{32,}"
        + _TOKEN_END
        + ")",
        lead=1,
    ),
    Rule("quiver-key", r"qv_(?<![A-Za-z0-9_]qv_)[A-Za-z0-9_\-]{43}" + _TOKEN_END),
    Rule("url-password", r"://[^\s:/?#@\"'<>\[\]]*:(?P<secret>[^\s/?#@\"'<>\[\]]+)@"),
    Rule(
        "authorization-header",
        r"zation(?<=authorization)[\"']?[ \t]*[:=][ \t]*[\"']?(?:[a-z0-9\-]+[ \t]+)?"
        r"(?P<secret>[a-z0-9\-._~+/=:,%]{12,})",
        folded=True,
    ),
    Rule("bearer-token", r"bearer(?<![a-z0-9_]bearer)[ \t]+(?P<secret>[a-z0-9\-._~+/]{12,}=*)", folded=True),
    Rule(
        "secret-assignment",
        r"p(?:ass(?:word|wd|phrase)|wd(?=[\"']?[ \t]*[:=][ \t]*[\"']?[^/~\"']))" + _ASSIGNED_VALUE,
        folded=True,
    ),
    Rule("secret-assignment", r"cret(?<=secret)(?:[_\-]?key)?" + _ASSIGNED_VALUE, folded=True),
    Rule(
        "secret-assignment",
        r"ken(?<=token)(?=[\"']?[ \t]*[:=])" + _not_after("token", *_PAGING) + _ASSIGNED_VALUE,
        folded=True,
    ),
    Rule(
        "secret-assignment",
        "key" + _after("apikey", "api_key", "api-key", "privatekey", "private_key", "private-key") + _ASSIGNED_VALUE,
        folded=True,
    ),
    Rule("secret-assignment", r"uth(?<![a-z]auth)(?<=auth)" + _ASSIGNED_VALUE, folded=True),
)
"""Most specific first: when finds overlap, the mask is named after the earlier rule."""

# Keys of a JSON object whose string values are secrets whatever they look like.
_SECRET_KEY = re.compile(
    r"(?:pass(?:word|wd|phrase)|pwd|secret(?:key)?|token|apikey|privatekey|(?<!o)auth|authorization)$"
)
_SECRET_KEY_SEPARATORS = re.compile(r"[_\-. ]")
_PAGING_KEYS = tuple(prefix + "token" for prefix in _PAGING)


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    regex: re.Pattern[str]
    folded: bool
    unfolded: re.Pattern[str] | None  # the folded rule for text whose lowercase form has another length
    groups: tuple[int, ...]
    lead: int


def _compile(name: str, regex: re.Pattern[str], folded: bool = False, lead: int = 0) -> _Compiled:
    groups = tuple(index for group, index in regex.groupindex.items() if group.startswith("secret"))
    unfolded = re.compile(regex.pattern, regex.flags | re.IGNORECASE) if folded else None
    return _Compiled(name, regex, folded, unfolded, groups, lead)


@functools.cache
def _builtin() -> tuple[_Compiled, ...]:
    """The built-in rules compiled (some 10 ms: done on first use, not at start-up)."""
    return tuple(_compile(rule.name, re.compile(rule.pattern), rule.folded, rule.lead) for rule in BUILTIN_RULES)


@dataclass(frozen=True, slots=True)
class _Matcher:
    rules: tuple[_Compiled, ...]
    folds: bool  # whether any rule searches the lowercased text
    screen: _Screen | None


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """The configured extra patterns, compiled; a `ConfigError` names any that is unusable.

    They are compiled with `re.MULTILINE`, so `^` and `$` match at the start and end of lines.
    """
    compiled: list[re.Pattern[str]] = []
    for index, pattern in enumerate(patterns):
        where = f"policy.redaction.patterns[{index}]"
        try:
            regex = re.compile(pattern, re.MULTILINE)
        except re.error as exc:
            raise ConfigError(
                f"{where} is not a valid regular expression: {pattern!r} ({exc})",
                hint="patterns use Python `re` syntax; quote them in YAML and escape backslashes",
            ) from None
        if regex.fullmatch("") is not None:
            raise ConfigError(
                f"{where} matches the empty string: {pattern!r}",
                hint="a pattern must match at least one character, e.g. 'acct-[0-9]{8}' rather than '[0-9]*'",
            )
        compiled.append(regex)
    return compiled


def _secret_forms(values: Iterable[str]) -> tuple[str, ...]:
    """Each secret as written, as escaped inside JSON and as percent-encoded in a URL; longest first."""
    forms: set[str] = set()
    for value in values:
        if len(value) < MIN_SECRET_CHARS:
            continue
        forms.update((value, json.dumps(value, ensure_ascii=False)[1:-1], quote(value, safe="")))
    return tuple(sorted(forms, key=lambda form: (-len(form), form)))


Span = tuple[int, int, str]


class Redactor:
    """Finds and masks secrets; cheap to call on every result. Immutable once built."""

    def __init__(self, *, patterns: Sequence[str] = (), builtin: bool = True, secrets: Iterable[str] = ()) -> None:
        self._custom = tuple(_compile(f"pattern-{n}", regex) for n, regex in enumerate(compile_patterns(patterns), 1))
        self._builtin = builtin
        self._secrets = _secret_forms(secrets)
        self._key_context = builtin

    @functools.cached_property
    def _matcher(self) -> _Matcher:
        rules = (*(_builtin() if self._builtin else ()), *self._custom)
        return _Matcher(rules, any(rule.folded for rule in rules), _Screen.of(rules))

    @classmethod
    def from_config(cls, config: Redaction, secrets: Iterable[str] = ()) -> Redactor:
        return cls(patterns=config.patterns, builtin=config.builtin, secrets=secrets)

    @property
    def names(self) -> list[str]:
        """The names masks can carry, in order of precedence."""
        names = [CONFIGURED_SECRET] if self._secrets else []
        return list(dict.fromkeys([*names, *(rule.name for rule in self._matcher.rules)]))

    def redact_text(self, text: str, counts: Counter[str] | None = None) -> tuple[str, int]:
        """`text` with every secret masked, and how many were; `counts` (if given) adds them up by name."""
        spans = self._spans(text)
        if not spans:
            return text, 0
        return _apply(text, spans, counts), len(spans)

    def redact_error(self, text: str) -> str:
        return self.redact_text(text)[0]

    def redact_value(self, value: Any, counts: Counter[str] | None = None) -> tuple[Any, int]:
        """A JSON-like value with secrets in its strings masked; keys are kept as they are.

        A string under a key that names a secret (`password`, `apiKey`, `client_secret`, ...) is
        masked whole. Nothing is copied unless something is masked.
        """
        strings: list[str] = []
        wholes: set[int] = set()
        _collect(value, self._key_context, strings, wholes)
        if not strings:
            return value, 0
        masked, total = self._redact_strings(strings, wholes, counts)
        if not total:
            return value, 0
        return _rebuild(value, iter(masked)), total

    def redact_result(
        self, result: types.CallToolResult, counts: Counter[str] | None = None
    ) -> tuple[types.CallToolResult, int]:
        """The result with secrets masked in its text, text resources, links, structured content and `_meta`.

        Image, audio and blob data pass untouched. The result is copied only if something is masked.
        """
        fields: dict[str, Any] = {"content": [_block_strings(block) for block in result.content]}
        if result.structured_content is not None:
            fields["structured_content"] = result.structured_content
        if result.meta:
            fields["meta"] = result.meta
        masked, total = self.redact_value(fields, counts)
        if not total:
            return result, 0
        content = [
            _with_strings(block, strings) for block, strings in zip(result.content, masked["content"], strict=True)
        ]
        update: dict[str, Any] = {"content": content}
        update.update({key: masked[key] for key in ("structured_content", "meta") if key in masked})
        return result.model_copy(update=update), total

    # -- finding

    def _spans(self, text: str) -> list[Span]:
        found: list[tuple[int, int, int, str]] = []  # start, end, precedence, name
        for secret in self._secrets:
            start = text.find(secret)
            while start != -1:
                found.append((start, start + len(secret), 0, CONFIGURED_SECRET))
                start = text.find(secret, start + len(secret))
        matcher = self._matcher
        lowered = text.lower() if matcher.folds else text
        same_length = len(lowered) == len(text)
        if matcher.screen is not None and matcher.screen.clean(text, lowered, same_length):
            return _merge(found)
        for precedence, rule in enumerate(matcher.rules, 1):
            if not rule.folded:
                regex, subject = rule.regex, text
            elif same_length:
                regex, subject = rule.regex, lowered
            else:  # a few characters lowercase to two; search the text itself
                regex, subject = rule.unfolded or rule.regex, text
            for match in regex.finditer(subject):
                for start, end in _secret_spans(match, rule.groups, rule.lead):
                    if end > start and not text.startswith(MASK_PREFIX, start):
                        found.append((start, end, precedence, rule.name))
        return _merge(found)

    def _redact_strings(
        self, strings: Sequence[str], wholes: set[int], counts: Counter[str] | None
    ) -> tuple[list[str], int]:
        """Each string masked (those in `wholes` entirely), all searched as one text."""
        searched = [text for index, text in enumerate(strings) if index not in wholes] if wholes else list(strings)
        joined = _JOIN.join(searched)
        spans = self._spans(joined)
        found, total = searched, len(spans)
        if spans and joined.count(_JOIN) == len(searched) - 1 and not _crosses(joined, spans):
            found = _apply(joined, spans, counts).split(_JOIN)
        elif spans:  # a string holds the separator, or a configured pattern matched across two
            pairs = [self.redact_text(text, counts) for text in searched]
            found, total = [text for text, _ in pairs], sum(n for _, n in pairs)
        total += len(wholes)
        if counts is not None and wholes:
            counts["secret-assignment"] += len(wholes)
        if not wholes:
            return found, total
        results = iter(found)
        return [mask("secret-assignment") if index in wholes else next(results) for index in range(len(strings))], total


@dataclass(frozen=True, slots=True)
class _Screen:
    """Every rule in one regex per kind of subject, to clear a short text in one search.

    Each rule's pattern starts with a literal the regex engine jumps between, which makes one
    search per rule fast on long texts; on short ones (most tool results) the cost is the number
    of searches, so a text that no alternative matches is known clean after one search each of
    the text and its lowercase form. A text the screen does not clear is searched rule by rule.
    """

    plain: re.Pattern[str] | None  # rules searched in the text itself
    folded: re.Pattern[str] | None  # folded rules, searched in the lowercased text
    unfolded: re.Pattern[str] | None  # folded rules, case-insensitive, for texts whose lowercase has another length

    @classmethod
    def of(cls, rules: Sequence[_Compiled]) -> _Screen | None:
        try:
            return cls(
                _alternatives([rule.regex for rule in rules if not rule.folded]),
                _alternatives([rule.regex for rule in rules if rule.folded]),
                _alternatives([rule.unfolded or rule.regex for rule in rules if rule.folded]),
            )
        except (re.error, ValueError):  # a configured pattern that cannot share a regex: search rule by rule
            return None

    def clean(self, text: str, lowered: str, same_length: bool) -> bool:
        if len(text) > _SCREEN_MAX:
            return False
        if self.plain is not None and self.plain.search(text):
            return False
        folded, subject = (self.folded, lowered) if same_length else (self.unfolded, text)
        return folded is None or not folded.search(subject)


# Longer texts are searched rule by rule, where each rule's leading literal pays off.
_SCREEN_MAX = 4096
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")
_BACKREFERENCE = re.compile(r"\(\?P=|\\[1-9]")
_SCOPED_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))


def _alternatives(regexes: Sequence[re.Pattern[str]]) -> re.Pattern[str] | None:
    """One regex matching where any of `regexes` matches (their flags scoped to each)."""
    if not regexes:
        return None
    parts = []
    for regex in regexes:
        if _BACKREFERENCE.search(regex.pattern):
            raise ValueError("a back-reference does not survive renumbered groups")
        flags = "".join(letter for flag, letter in _SCOPED_FLAGS if regex.flags & flag)
        parts.append(f"(?{flags}:{_NAMED_GROUP.sub('(?:', regex.pattern)})")
    return re.compile("|".join(parts))


def _secret_spans(match: re.Match[str], groups: tuple[int, ...], lead: int) -> Iterator[tuple[int, int]]:
    if not groups:
        yield match.start() - lead, match.end()
        return
    for group in groups:
        start, end = match.span(group)
        if start != -1:
            yield start, end


def _merge(found: list[tuple[int, int, int, str]]) -> list[Span]:
    """Overlapping finds joined into one span, named after the find of highest precedence."""
    found.sort()
    merged: list[Span] = []
    best = 0
    for start, end, precedence, name in found:
        if merged and start < merged[-1][1]:
            last_start, last_end, last_name = merged[-1]
            if precedence < best:
                last_name, best = name, precedence
            merged[-1] = (last_start, max(last_end, end), last_name)
        else:
            merged.append((start, end, name))
            best = precedence
    return merged


def _apply(text: str, spans: Sequence[Span], counts: Counter[str] | None) -> str:
    parts: list[str] = []
    position = 0
    for start, end, name in spans:
        parts += (text[position:start], mask(name))
        position = end
        if counts is not None:
            counts[name] += 1
    parts.append(text[position:])
    return "".join(parts)


def _crosses(joined: str, spans: Sequence[Span]) -> bool:
    """Whether a span reaches into the separator between two strings."""
    starts: list[int] = []
    position = joined.find(_JOIN)
    while position != -1:
        starts.append(position)
        position = joined.find(_JOIN, position + len(_JOIN))
    for start, end, _ in spans:
        # The last separator starting before `end` must end before `start`.
        index = bisect.bisect_left(starts, end) - 1
        if index >= 0 and starts[index] + len(_JOIN) > start:
            return True
    return False


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    normal = _SECRET_KEY_SEPARATORS.sub("", key.lower())
    return _SECRET_KEY.search(normal) is not None and not normal.endswith(_PAGING_KEYS)


def _masks_whole(key: object, value: str) -> bool:
    if not (isinstance(key, str) and _is_secret_key(key)):
        return False
    if len(value) < 3 or value.startswith(MASK_PREFIX):
        return False
    return not (value.startswith(("/", "~")) and key.lower().endswith("pwd"))  # $PWD is a directory


_CONTAINERS = (dict, list, tuple)


def _collect(value: Any, key_context: bool, strings: list[str], wholes: set[int]) -> None:
    """The strings in `value`, depth first; `wholes` gets the indices of those to mask whole."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                if key_context and _masks_whole(key, item):
                    wholes.add(len(strings))
                strings.append(item)
            elif isinstance(item, _CONTAINERS):
                _collect(item, key_context, strings, wholes)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, str):
                strings.append(item)
            elif isinstance(item, _CONTAINERS):
                _collect(item, key_context, strings, wholes)
    elif isinstance(value, str):
        strings.append(value)


def _rebuild(value: Any, strings: Iterator[str]) -> Any:
    """`value` with its strings taken in turn from `strings`, in the order `_collect` found them."""
    if isinstance(value, str):
        return next(strings)
    if isinstance(value, dict):
        return {key: _rebuild(item, strings) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_rebuild(item, strings) for item in value)
    return value


# -- content blocks: which of their strings are searched

_LINK_FIELDS = ("uri", "name", "title", "description")


def _block_strings(block: types.ContentBlock) -> list[str]:
    if isinstance(block, types.TextContent):
        return [block.text]
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        return [resource.uri, resource.text] if isinstance(resource, types.TextResourceContents) else [resource.uri]
    if isinstance(block, types.ResourceLink):
        return [getattr(block, field) or "" for field in _LINK_FIELDS]
    return []  # image and audio data: base64, never text


def _with_strings(block: types.ContentBlock, strings: list[str]) -> types.ContentBlock:
    if strings == _block_strings(block):
        return block
    if isinstance(block, types.TextContent):
        return block.model_copy(update={"text": strings[0]})
    if isinstance(block, types.EmbeddedResource):
        update = {"uri": strings[0]}
        if isinstance(block.resource, types.TextResourceContents):
            update["text"] = strings[1]
        return block.model_copy(update={"resource": block.resource.model_copy(update=update)})
    if isinstance(block, types.ResourceLink):
        update = {
            field: text
            for field, text in zip(_LINK_FIELDS, strings, strict=True)
            if (getattr(block, field) or "") != text
        }
        return block.model_copy(update=update)
    return block


# -- logs


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's message (after formatting) and its traceback; drops nothing."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # the handler reports a bad format string itself
            return True
        masked = self.redactor.redact_error(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            masked = self.redactor.redact_error(record.exc_text)
            if masked != record.exc_text:
                # Handlers that render `exc_info` themselves would show the secrets again.
                record.exc_text, record.exc_info = masked, None
        if record.stack_info:
            record.stack_info = self.redactor.redact_error(record.stack_info)
        return True


def install_log_redaction(redactor: Redactor, logger: logging.Logger | None = None) -> RedactingFilter:
    """Mask secrets in everything the handlers of `logger` (default: the root logger) emit.

    A handler filter sees records from every logger that propagates to it, which a logger filter
    would not. Call it once logging is configured; it replaces a filter installed before.
    """
    target = logger if logger is not None else logging.getLogger()
    remove_log_redaction(target)
    installed = RedactingFilter(redactor)
    for handler in target.handlers:
        handler.addFilter(installed)
    return installed


def remove_log_redaction(logger: logging.Logger | None = None) -> None:
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
