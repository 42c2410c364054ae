"""Capping tool results, and keeping what did not fit so that it can be read page by page.

A result over the byte or token limit keeps whole content blocks while they fit, cuts the next
text at a character boundary, and ends with a note saying what was cut and how to read on.
Nothing vanishes unannounced: the rest is kept in `Continuations` under an unguessable handle
bound to the caller, and each page is cut to the same limits. Pages are computed when asked for,
so a huge result costs only the pages that are read; measuring never tokenizes more than a page.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

from quiver import tokens
from quiver.errors import QuiverError

CONTINUE_TOOL = "quiver.continue"
"""The tool id the notes tell the model to call for the next page."""

HANDLE_PREFIX = "c_"
# 128 bits: a handle cannot be guessed, only received.
HANDLE_BYTES = 16
DEFAULT_TTL = 30 * 60.0
DEFAULT_MAX_ENTRIES = 256
# The most result text kept for paging at once, across all callers.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# Tokens rarely exceed four characters of text, so a window this much larger than the token
# room nearly always holds the cut; otherwise it doubles until it does.
_CHARS_PER_TOKEN = 4


class UnknownContinuationError(QuiverError):
    """A continuation handle that is not (or no longer) kept for this caller."""

    code = "continuation_unknown"

    def __init__(self, handle: str, ttl: float) -> None:
        super().__init__(
            f"unknown or expired continuation handle '{handle}'",
            hint=f"continuations are kept for {ttl / 60:g} minutes after their last read, and only for the"
            " caller they were given to; call the original tool again to get the output anew",
        )


class PageOutOfRangeError(QuiverError):
    """A page number outside a continuation's pages."""

    code = "continuation_page"

    def __init__(self, handle: str, page: int, last: int | None) -> None:
        known = f"its pages run from 2 to {last}" if last is not None else "its pages start at 2"
        super().__init__(
            f"continuation '{handle}' has no page {page}: {known}",
            hint="page 1 was the original result; ask for the page number its note gave",
        )


@dataclass(frozen=True, slots=True)
class Caps:
    """Limits for one page; `None` means no limit of that kind."""

    bytes: int | None = None
    tokens: int | None = None

    def describe(self) -> str:
        parts = [f"{self.bytes:,} bytes"] if self.bytes is not None else []
        parts += [f"{self.tokens:,} tokens"] if self.tokens is not None else []
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class _Piece:
    """A content block as paging sees it: text that may be cut, or a block shown whole or not at all."""

    block: types.ContentBlock
    text: str | None
    size: int  # UTF-8 bytes of the text; base64 characters of binary data
    tokens: int = 0  # of a block that is never cut (binary data counts none)


@dataclass(frozen=True, slots=True)
class _Cursor:
    index: int  # of the piece
    offset: int = 0  # characters of its text already shown
    position: int = 0  # bytes of the output already shown


@dataclass(frozen=True, slots=True)
class _Page:
    blocks: list[types.ContentBlock]
    start: _Cursor
    end: _Cursor
    tokens: int


@dataclass(frozen=True, slots=True)
class Remainder:
    """What a capped result did not show: its pieces from `start` on, paged to `caps`."""

    pieces: tuple[_Piece, ...]
    start: _Cursor
    caps: Caps
    total: int  # bytes of the whole output, for the notes

    @property
    def size(self) -> int:
        """Bytes it holds: all of every block it pages, including what the first page showed."""
        return sum(piece.size for piece in self.pieces)


@dataclass(frozen=True, slots=True)
class CapOutcome:
    """A result as capped, and what happened to the part that was not shown."""

    result: types.CallToolResult
    truncated: bool = False
    shown_bytes: int = 0
    total_bytes: int = 0
    shown_tokens: int | None = None
    handle: str | None = None
    kept_bytes: int = 0
    """Bytes kept for paging under `handle`."""
    structured_dropped: bool = False
    omitted: tuple[str, ...] = ()
    """Blocks larger than a whole page, left out with a note."""
    lost_bytes: int = 0
    """Bytes neither shown nor kept: omitted blocks, or a rest larger than the store holds."""

    def to_dict(self) -> dict[str, Any]:
        """A summary for the audit log and the result's `_meta`."""
        data: dict[str, Any] = {"shown_bytes": self.shown_bytes, "total_bytes": self.total_bytes}
        if self.shown_tokens is not None:
            data["shown_tokens"] = self.shown_tokens
        if self.handle:
            data["handle"] = self.handle
            data["kept_bytes"] = self.kept_bytes
        if self.structured_dropped:
            data["structured_dropped"] = True
        if self.omitted:
            data["omitted"] = list(self.omitted)
        if self.lost_bytes:
            data["lost_bytes"] = self.lost_bytes
        return data


# -- the store


@dataclass(slots=True)
class _Entry:
    remainder: Remainder
    principal: str | None
    expires: float
    starts: list[_Cursor] = field(default_factory=list)  # starts[i]: where page i + 2 begins
    last: int | None = None  # the last page, once a read has reached it


class Continuations:
    """The rests of capped results, kept in memory for a while: bounded, least recently read go first.

    Handles are bound to the principal that received them; for anyone else they do not exist.
    Not thread-safe: it is meant to be used from the gateway's event loop.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        tool: str = CONTINUE_TOOL,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.tool = tool
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def put(self, remainder: Remainder, *, principal: str | None = None) -> str | None:
        """Keep `remainder` and return its handle; `None` if it alone is more than the store may hold."""
        size = remainder.size
        if size > self.max_bytes:
            return None
        now = self._clock()
        self._expire(now)
        while self._entries and (len(self._entries) >= self.max_entries or self._bytes + size > self.max_bytes):
            self._drop(next(iter(self._entries)))
        handle = HANDLE_PREFIX + secrets.token_urlsafe(HANDLE_BYTES)
        self._entries[handle] = _Entry(remainder, principal, now + self.ttl, [remainder.start])
        self._bytes += size
        return handle

    def page(self, handle: str, page: int, *, principal: str | None = None) -> types.CallToolResult:
        """Page `page` (2 and on) of a capped result, ending with a note on what comes next."""
        now = self._clock()
        self._expire(now)
        entry = self._entries.get(handle)
        if entry is None or entry.principal != principal:
            raise UnknownContinuationError(handle, self.ttl)
        self._entries.move_to_end(handle)
        entry.expires = now + self.ttl
        remainder = entry.remainder
        # Pages are cut in order; only where each begins is remembered.
        while len(entry.starts) < page - 1 and entry.last is None:
            start = entry.starts[-1]
            entry.starts.append(_fill(remainder.pieces, start, remainder.caps).end)
            if _done(remainder.pieces, entry.starts[-1]):
                entry.last = len(entry.starts)
        if page < 2 or page - 2 >= len(entry.starts) or _done(remainder.pieces, entry.starts[page - 2]):
            raise PageOutOfRangeError(handle, page, entry.last)
        cut = _fill(remainder.pieces, entry.starts[page - 2], remainder.caps)
        if _done(remainder.pieces, cut.end):
            entry.last = page
        elif len(entry.starts) == page - 1:
            entry.starts.append(cut.end)
        note = _page_note(self.tool, handle, page, cut, remainder.total, last=entry.last == page)
        return types.CallToolResult(content=[*cut.blocks, _text(note)])

    def _expire(self, now: float) -> None:
        # Reads move an entry to the end, so the expired ones are at the front.
        while self._entries:
            handle, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            self._drop(handle)

    def _drop(self, handle: str) -> None:
        entry = self._entries.pop(handle)
        self._bytes -= entry.remainder.size


# -- capping


def cap_result(
    result: types.CallToolResult,
    *,
    max_bytes: int | None,
    max_tokens: int | None,
    store: Continuations,
    principal: str | None = None,
) -> CapOutcome:
    """`result` cut to the limits, with a final note on what was cut; the rest is kept in `store`.

    Sizes are what a client would read: text, embedded text resources and the JSON of the
    structured content in UTF-8 bytes and cl100k tokens; image, audio and blob data by their
    base64 length, and no tokens (a model does not read them as text).
    """
    caps = Caps(max_bytes, max_tokens)
    if caps.bytes is None and caps.tokens is None:
        return CapOutcome(result)
    pieces: list[_Piece] = []
    omitted: list[_Piece] = []  # blocks that cannot be cut and are larger than any page
    for block in result.content:
        piece = _piece(block, caps)
        fits_a_page = piece.text is not None or _within(piece.size, piece.tokens, caps.bytes, caps.tokens)
        (pieces if fits_a_page else omitted).append(piece)
    structured = _Structured.plan(result.structured_content, caps, pieces)
    if structured.dropped and not structured.mirrored:
        pieces.append(_Piece(_text(structured.text), structured.text, structured.size))
    first = _fill(pieces, _Cursor(0, 0, structured.reserved.bytes or 0), caps, structured.reserved)
    done = _done(pieces, first.end)
    if done and not omitted and not structured.dropped:
        return CapOutcome(result)

    total = sum(piece.size for piece in pieces) + (structured.reserved.bytes or 0)
    shown = first.end.position
    handle = None if done else store.put(Remainder(tuple(pieces), first.end, caps, total), principal=principal)
    notes = [f"{shown:,} of {total:,} bytes shown (limit: {caps.describe()}).", *structured.notes()]
    notes += [f"{_describe(piece)} exceeds the limit and was left out." for piece in omitted]
    if handle is not None:
        notes.append(f"The rest: {_call(store.tool, handle, 2)}.")
    elif not done:
        notes.append(
            f"The rest ({total - shown:,} bytes) is more than the gateway keeps for paging and was dropped;"
            " ask the tool for less."
        )
    content = [*first.blocks, _text(f"[output truncated: {' '.join(notes)}]")]
    kept = None if structured.dropped else result.structured_content
    return CapOutcome(
        result.model_copy(update={"content": content, "structured_content": kept}),
        truncated=True,
        shown_bytes=shown,
        total_bytes=total,
        shown_tokens=first.tokens + (structured.reserved.tokens or 0) if caps.tokens is not None else None,
        handle=handle,
        kept_bytes=total - shown if handle else 0,
        structured_dropped=structured.dropped,
        omitted=tuple(_describe(piece) for piece in omitted),
        lost_bytes=sum(piece.size for piece in omitted) + (total - shown if handle is None and not done else 0),
    )


@dataclass(frozen=True, slots=True)
class _Structured:
    """What becomes of the structured content: kept whole if it fits a page alone, else dropped.

    Dropped, its JSON is paged after the content, unless a text block already holds the same data.
    """

    text: str = ""
    size: int = 0
    reserved: Caps = Caps()  # what it takes of the first page, if kept
    dropped: bool = False
    mirrored: bool = False

    @classmethod
    def plan(cls, value: Any, caps: Caps, pieces: Sequence[_Piece]) -> _Structured:
        if value is None:
            return cls()
        text = _compact_json(value)
        size = _utf8_len(text)
        fits, count = _fits(text, size, caps)
        if fits:
            return cls(text, size, Caps(size, count))
        return cls(text, size, dropped=True, mirrored=_mirrors(value, pieces))

    def notes(self) -> list[str]:
        if not self.dropped:
            return []
        where = "the same data is in the text" if self.mirrored else "its JSON follows the text"
        return [f"The structured content ({self.size:,} bytes) exceeds the limit; {where}."]


def _piece(block: types.ContentBlock, caps: Caps) -> _Piece:
    if isinstance(block, types.TextContent):
        return _Piece(block, block.text, _utf8_len(block.text))
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return _Piece(block, resource.text, _utf8_len(resource.text))
        return _Piece(block, None, len(resource.blob))
    if isinstance(block, types.ImageContent | types.AudioContent):
        return _Piece(block, None, len(block.data))
    link = _compact_json(block.model_dump(by_alias=True, mode="json", exclude_none=True))
    return _Piece(block, None, _utf8_len(link), tokens.count(link) if caps.tokens is not None else 0)


def _fill(pieces: Sequence[_Piece], start: _Cursor, caps: Caps, reserved: Caps = Caps()) -> _Page:
    """One page from `start`: whole blocks while they fit, then as much of the next text as fits."""
    room_bytes = None if caps.bytes is None else caps.bytes - (reserved.bytes or 0)
    room_tokens = None if caps.tokens is None else caps.tokens - (reserved.tokens or 0)
    empty = reserved.bytes is None and reserved.tokens is None
    blocks: list[types.ContentBlock] = []
    index, offset, position = start.index, start.offset, start.position
    used_tokens = 0
    while index < len(pieces):
        piece = pieces[index]
        if piece.text is None:
            if not _within(piece.size, piece.tokens, room_bytes, room_tokens):
                break  # it fits the next page: blocks larger than any page were left out before
            blocks.append(piece.block)
            room_bytes = None if room_bytes is None else room_bytes - piece.size
            room_tokens = None if room_tokens is None else room_tokens - piece.tokens
            used_tokens += piece.tokens
            index, position = index + 1, position + piece.size
            continue
        end, cut_tokens = _cut(piece.text, offset, room_bytes, room_tokens)
        if end == offset < len(piece.text) and empty and not blocks:
            end = offset + 1  # a limit smaller than one character: show one anyway, or no page ever ends
            cut_tokens = tokens.count(piece.text[offset:end])
        if end > offset or not piece.text:
            head = piece.text[offset:end]
            blocks.append(piece.block if head == piece.text else _with_text(piece.block, head))
            head_bytes = _utf8_len(head)
            room_bytes = None if room_bytes is None else room_bytes - head_bytes
            room_tokens = None if room_tokens is None else room_tokens - cut_tokens
            used_tokens += cut_tokens
            position += head_bytes
        if end < len(piece.text):
            offset = end
            break
        index, offset = index + 1, 0
    return _Page(blocks, start, _Cursor(index, offset, position), used_tokens)


def _done(pieces: Sequence[_Piece], cursor: _Cursor) -> bool:
    return cursor.index >= len(pieces)


def _within(size: int, count: int, room_bytes: int | None, room_tokens: int | None) -> bool:
    return (room_bytes is None or size <= room_bytes) and (room_tokens is None or count <= room_tokens)


def _fits(text: str, size: int, caps: Caps) -> tuple[bool, int]:
    """Whether `text` fits the limits whole, and its tokens if it does (and tokens are limited)."""
    if caps.bytes is not None and size > caps.bytes:
        return False, 0
    if caps.tokens is None:
        return True, 0
    end, count = _token_end(text, 0, len(text), caps.tokens)
    return end == len(text), count


def _cut(text: str, start: int, room_bytes: int | None, room_tokens: int | None) -> tuple[int, int]:
    """Where the longest stretch of `text` from `start` within both rooms ends, and its tokens."""
    end = len(text) if room_bytes is None else _byte_end(text, start, max(room_bytes, 0))
    if room_tokens is None:
        return end, 0
    return _token_end(text, start, end, max(room_tokens, 0))


def _byte_end(text: str, start: int, room: int) -> int:
    window = text[start : start + room]  # never fewer characters than fit: each takes a byte at least
    if window.isascii():
        return start + len(window)
    encoded = window.encode()
    if len(encoded) <= room:
        return start + len(window)
    return start + len(encoded[:room].decode("utf-8", "ignore"))  # "ignore" drops only a character cut in two


def _token_end(text: str, start: int, end: int, limit: int) -> tuple[int, int]:
    """Where the longest stretch of `text[start:end]` of at most `limit` tokens ends, and its tokens."""
    if end - start <= limit and text[start:end].isascii():  # a token is one byte at least
        return end, tokens.count(text[start:end])
    encoding = _encoding()
    width = min(end - start, _CHARS_PER_TOKEN * limit + 64)
    while True:
        ids = encoding.encode(text[start : start + width], disallowed_special=())
        if len(ids) > limit:
            break
        if start + width >= end:
            return end, len(ids)
        width = min(end - start, width * 2)
    keep = limit
    while keep > 0:
        head: str = encoding.decode_bytes(ids[:keep]).decode("utf-8", "ignore")
        count = tokens.count(head)
        if count <= limit:
            return start + len(head), count
        keep -= count - limit  # the head alone encodes differently at its end; try a little shorter
    return start, 0


@functools.cache
def _encoding() -> Any:
    import tiktoken

    return tiktoken.get_encoding(tokens.ENCODING)


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _mirrors(structured: Any, pieces: Sequence[_Piece]) -> bool:
    """Whether a text block holds the structured content as JSON, as tools are asked to provide."""
    for piece in pieces:
        text = piece.text
        if isinstance(piece.block, types.TextContent) and text and text.lstrip()[:1] in ("{", "["):
            try:
                if json.loads(text) == structured:
                    return True
            except ValueError:
                continue
    return False


def _with_text(block: types.ContentBlock, text: str) -> types.ContentBlock:
    if isinstance(block, types.EmbeddedResource):
        return block.model_copy(update={"resource": block.resource.model_copy(update={"text": text})})
    return block.model_copy(update={"text": text})


def _describe(piece: _Piece) -> str:
    block = piece.block
    if isinstance(block, types.ImageContent):
        return f"An image ({block.mime_type}, {piece.size:,} bytes)"
    if isinstance(block, types.AudioContent):
        return f"An audio clip ({block.mime_type}, {piece.size:,} bytes)"
    if isinstance(block, types.EmbeddedResource):
        return f"The resource {block.resource.uri} ({piece.size:,} bytes)"
    return f"A resource link ({piece.size:,} bytes)"


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _call(tool: str, handle: str, page: int) -> str:
    arguments = json.dumps({"handle": handle, "page": page})
    return f'call_tool(id="{tool}", arguments={arguments})'


def _page_note(tool: str, handle: str, page: int, cut: _Page, total: int, *, last: bool) -> str:
    shown = f"bytes {cut.start.position + 1:,}-{cut.end.position:,} of {total:,}"
    return f"[page {page}: {shown}. " + (
        "This is the last page.]" if last else f"Next: {_call(tool, handle, page + 1)}.]"
    )
