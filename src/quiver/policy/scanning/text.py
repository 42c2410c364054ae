"""Turning a tool definition into the texts the rules read.

Every string a model may see is collected: name, title, description, and every key and string
value of the input and output schemas (parameter descriptions and names are classic hiding
places). Each is normalised so that a payload disguised with invisible characters, homoglyphs or
full-width letters still reads as plain English, and hidden layers (tag characters, variation
selectors, base64, hex, escapes, rot13, leetspeak) are decoded into texts of their own.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import mcp_types as types

from quiver.policy.scanning.model import Text, TextKind

# Format characters that render as nothing (zero-width, bidi controls, fillers, tag characters,
# variation selectors). Removing them before matching defeats "ig\u200bnore"-style splitting.
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
# Cyrillic and Greek letters that look like Latin ones; NFKC leaves them alone.
CONFUSABLES = "аеорсухіјѕԁԛԝүһАВЕКМНОРСТХУІЈЅαοινκρτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"
HOMOGLYPHS = str.maketrans(CONFUSABLES, "aeopcyxijsdqwyhABEKMHOPCTXYIJSaoivkptuxABEZHIKMNOPTYX")
# Starts only where a whitespace run starts, so a long run is not rescanned from every position.
_BLANK_LINES = re.compile(r"(?<![ \t\f\v\r\u00a0])[ \t\f\v\r\u00a0]*\n(?:[ \t\f\v\r\u00a0]*\n)+\s*")
_SPACES = re.compile(r"\s+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_IDENT_SEPARATORS = re.compile(r"[_\-.]+")
# Letters spaced out one by one ("i g n o r e"); a wider gap separates words.
_SPACED_LETTERS = re.compile(r"(?<![\w])(?:[A-Za-z] ){3,}[A-Za-z](?![\w])")
_LEET_WORD = re.compile(r"\b(?=[a-z0-9]*[a-z])(?=[a-z0-9]*[013457])[a-z0-9]{3,}\b", re.IGNORECASE)
_LEET = str.maketrans("013457", "oieast")
_LEET_HINT = re.compile(r"[a-z][013457]|[013457][a-z]", re.IGNORECASE)
_BASE64 = re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{40,}={0,2}(?![\w+/=-])")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2}){20,}")
_RUNS = re.compile(r"[0-9A-Fa-f]{40,}")
_ESCAPES = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){6,}|(?:\\u[0-9A-Fa-f]{4}){6,}|(?:&#x?[0-9A-Fa-f]{2,6};){6,}")
_ROT13_HINT = re.compile(r"\brot[- ]?13\b", re.IGNORECASE)
_DATA_IMAGE = re.compile(r"data:image/[\w.+-]+;base64,", re.IGNORECASE)
# JSON Schema keywords: keys outside this set are property names or additions worth reading.
SCHEMA_KEYWORDS = frozenset(
    [
        "$schema",
        "$id",
        "$ref",
        "$defs",
        "$comment",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$vocabulary",
        "type",
        "properties",
        "required",
        "description",
        "title",
        "default",
        "enum",
        "const",
        "examples",
        "format",
        "pattern",
        "items",
        "prefixItems",
        "additionalProperties",
        "patternProperties",
        "propertyNames",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "minProperties",
        "maxProperties",
        "dependentRequired",
        "dependentSchemas",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "definitions",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
        "deprecated",
        "readOnly",
        "writeOnly",
        "unevaluatedItems",
        "unevaluatedProperties",
        "nullable",
        "discriminator",
    ]
)
_PROPERTY_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
# Strings that carry no words worth scanning (JSON Schema type names and the like).
_TRIVIAL = frozenset({"string", "object", "integer", "number", "boolean", "array", "null", "true", "false"})
MIN_DECODED_CHARS = 12
PRINTABLE_SHARE = 0.9


def fold(raw: str) -> str:
    """`raw` without invisible characters, in NFKC, with homoglyphs mapped to ASCII letters."""
    return unicodedata.normalize("NFKC", INVISIBLE.sub("", raw)).translate(HOMOGLYPHS)


def collapse(text: str) -> str:
    """Blank lines become one newline (a paragraph break), every other whitespace run one space."""
    if "\n" not in text:
        return " ".join(text.split())
    return "\n".join(_SPACES.sub(" ", part).strip() for part in _BLANK_LINES.split(text)).strip()


def as_words(identifier: str) -> str:
    """`content_from_readingSSH-key` → `content from reading SSH key`."""
    return _IDENT_SEPARATORS.sub(" ", _CAMEL.sub(" ", identifier)).strip()


def decode_tags(raw: str) -> str:
    """The ASCII smuggled in Unicode tag characters (U+E0020–U+E007E), if any."""
    return "".join(chr(ord(ch) - 0xE0000) for ch in raw if 0xE0020 <= ord(ch) <= 0xE007E)


def decode_variation_selectors(raw: str) -> str:
    """Bytes hidden as a run of variation selectors (one selector per byte), as text."""
    data = bytearray()
    for ch in raw:
        point = ord(ch)
        if 0xFE00 <= point <= 0xFE0F:
            data.append(point - 0xFE00)
        elif 0xE0100 <= point <= 0xE01EF:
            data.append(point - 0xE0100 + 16)
    if len(data) < 4:  # a lone VS16 after an emoji is ordinary presentation, not a payload
        return ""
    return _printable(bytes(data))


_RIGHT_TO_LEFT_OVERRIDE = re.compile("\u202e([^\u202a-\u202e\u2066-\u2069]*)[\u202c\u2069]?")


def decode_bidi(raw: str) -> str:
    """`raw` as a reader sees it: each right-to-left override's text reversed ("" when there is none)."""
    if "\u202e" not in raw:
        return ""
    return _RIGHT_TO_LEFT_OVERRIDE.sub(lambda m: m.group(1)[::-1], raw)


def _printable(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if len(text) < MIN_DECODED_CHARS:
        return ""
    shown = sum(1 for ch in text if ch.isprintable() or ch in "\n\t")
    return text if shown / len(text) >= PRINTABLE_SHARE and " " in text else ""


def _looks_like_base64(candidate: str) -> bool:
    body = candidate.rstrip("=")
    has_mixed_case = any(c.islower() for c in body) and any(c.isupper() for c in body)
    has_symbols = any(c.isdigit() or c in "+/_-" for c in body)
    return has_mixed_case and has_symbols and body.count("/") <= len(body) // 16


def base64_runs(text: str) -> Iterator[tuple[re.Match[str], str]]:
    """Each base64-looking run in `text` with its decoding ("" when it is not readable text)."""
    for match in _BASE64.finditer(text):
        candidate = match.group()
        if not _looks_like_base64(candidate):
            continue
        if _DATA_IMAGE.search(text, max(0, match.start() - 40), match.start()):
            continue  # an image in a data: URI is data, not words
        body = candidate.rstrip("=")
        padded = body + "=" * (-len(body) % 4)
        try:
            data = base64.b64decode(padded, altchars=b"-_" if any(c in "-_" for c in body) else None)
        except (binascii.Error, ValueError):
            continue
        yield match, _printable(data)


def _decoded_layers(folded: str) -> Iterator[tuple[str, str]]:
    for match in _RUNS.finditer(folded):
        run = match.group()
        if _HEX.fullmatch(run):
            decoded = _printable(bytes.fromhex(run))
            if decoded:
                yield "hex", decoded
    for _, decoded in base64_runs(folded):
        if decoded:
            yield "base64", decoded
    if "\\x" in folded or "\\u" in folded or "&#" in folded:
        for match in _ESCAPES.finditer(folded):
            decoded = _unescape(match.group())
            if decoded:
                yield "escapes", decoded
    lowered = folded.lower()
    if "rot" in lowered and _ROT13_HINT.search(folded):
        yield "rot13", codecs.decode(folded, "rot13")
    if "backward" in lowered or "reverse" in lowered:
        yield "reversed text", folded[::-1]
    if _LEET_HINT.search(folded):
        leet_words = _LEET_WORD.findall(folded)
        if sum(1 for word in leet_words if not word.isdigit()) >= 2:
            yield "leetspeak", _LEET_WORD.sub(lambda m: m.group().translate(_LEET), folded)


def _unescape(run: str) -> str:
    """The text behind a run of `\\xNN`, `\\uNNNN` or `&#NN;` escapes ("" when it is not readable text)."""
    try:
        if run.startswith("&#"):
            entities = run.rstrip(";").split(";")
            points = [int(e[3:], 16) if e[:3].lower() == "&#x" else int(e[2:]) for e in entities]
            return _printable("".join(chr(point) for point in points).encode("utf-8"))
        return _printable(codecs.decode(run, "unicode_escape").encode("utf-8"))
    except (ValueError, OverflowError, UnicodeError):
        return ""


# Catalogues repeat strings a lot (forks, shared parameter descriptions): 105k strings, 21k distinct.
NORMALISED_CACHE_SIZE = 65_536


@lru_cache(maxsize=NORMALISED_CACHE_SIZE)
def _normalised(raw: str, kind: TextKind) -> tuple[str, tuple[tuple[str, str, str], ...]]:
    """`raw` normalised for matching, and its hidden layers as (origin, decoded, normalised)."""
    plain = raw.isascii()  # the common case: nothing to fold and nothing hidden in Unicode
    if kind == "identifier":
        return collapse(as_words(raw if plain else fold(raw))), ()
    unspaced = _SPACED_LETTERS.sub(lambda m: m.group().replace(" ", ""), raw)
    folded = unspaced if plain else fold(unspaced)
    layers: list[tuple[str, str]] = []
    if not plain:
        layers.extend(
            (origin, hidden)
            for origin, hidden in (
                ("tag characters", decode_tags(raw)),
                ("variation selectors", decode_variation_selectors(raw)),
                ("bidi override", decode_bidi(raw)),
            )
            if hidden
        )
    layers.extend(_decoded_layers(folded))
    return collapse(folded), tuple((origin, decoded, collapse(fold(decoded))) for origin, decoded in layers)


def clear_caches() -> None:
    """Forget normalised strings (for benchmarks that time a cold scan)."""
    _normalised.cache_clear()


def _texts_of(where: str, raw: str, kind: TextKind) -> Iterator[Text]:
    text, layers = _normalised(raw, kind)
    yield Text(where, raw, text, kind)
    for origin, decoded, normalised in layers:
        yield Text(f"{where} ({origin})", decoded, normalised, "decoded", origin)


def _schema_strings(schema: Any, root: str) -> Iterator[tuple[str, str, TextKind]]:
    """Every string of `schema` with where it is, keys included; a loop, so no nesting depth can overflow it."""
    stack: list[tuple[Any, str, bool]] = [(schema, root, False)]
    while stack:
        node, where, property_map = stack.pop()
        if isinstance(node, str):
            kind: TextKind = "identifier" if where.endswith("]") and ".required[" in where else "prose"
            yield where, node, kind
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{index}]", False) for index, item in reversed(list(enumerate(node))))
        elif isinstance(node, dict):
            children: list[tuple[Any, str, bool]] = []
            for key, value in node.items():
                key = str(key)
                path = f"{where}.{key}"
                if property_map or key not in SCHEMA_KEYWORDS:
                    yield f"{path} (name)", key, "identifier"
                children.append((value, path, key in _PROPERTY_MAPS and not property_map))
            stack.extend(reversed(children))


def collect_texts(tool: types.Tool) -> tuple[Text, ...]:
    """All the texts of `tool` a model may read, normalised, plus any hidden layers decoded."""
    found: list[tuple[str, str, TextKind]] = [("name", tool.name, "identifier")]
    if tool.title:
        found.append(("title", tool.title, "prose"))
    if tool.annotations is not None and tool.annotations.title:
        found.append(("annotations.title", tool.annotations.title, "prose"))
    if tool.description:
        found.append(("description", tool.description, "prose"))
    found.extend(_schema_strings(tool.input_schema, "inputSchema"))
    if tool.output_schema:
        found.extend(_schema_strings(tool.output_schema, "outputSchema"))
    texts: list[Text] = []
    for where, raw, kind in found:
        if len(raw) < 3 or raw in _TRIVIAL:
            continue
        texts.extend(_texts_of(where, raw, kind))
    return tuple(texts)


def parameter_names(texts: tuple[Text, ...]) -> frozenset[str]:
    """The names of the tool's parameters at any depth, lower-cased, from its collected texts."""
    return frozenset(
        text.raw.lower() for text in texts if text.where.startswith("inputSchema") and text.where.endswith(" (name)")
    )
