"""Rules on what a person reviewing a definition cannot see: invisible and control characters,
homoglyphs, encoded payloads, and descriptions too long (or padded) to be read.

These look at the strings as they were sent; what the hidden layers say is judged by the other
rules, which also read the decoded texts (see `text.py`).
"""

from __future__ import annotations

import re
import unicodedata

import mcp_types as types

from quiver.config.policy import Severity
from quiver.policy.scanning.model import EVIDENCE_CHARS, Finding, ScanContext, Text, excerpt
from quiver.policy.scanning.patterns import compile_pattern, finding, keep_strongest, matches
from quiver.policy.scanning.text import CONFUSABLES, base64_runs

_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_SELECTOR_RUN = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]{4,}")
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2060-\u2064\u3164\ufeff\uffa0]"
)
# Beyond this many invisible characters in one string, they are padding or a payload, not typography.
MANY_INVISIBLE = 8
_ESCAPE = re.compile("\x1b")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]|\r(?!\n)")
_MIXED_WORD = re.compile(rf"\b\w*(?:[A-Za-z][{CONFUSABLES}]|[{CONFUSABLES}][A-Za-z])\w*\b")
# A few mixed-script words is a typo or a unit; several is deliberate.
MANY_MIXED_WORDS = 3


# Scripts whose typography uses joiners, marks and zero-width spaces: right-to-left, Indic,
# South-East Asian, CJK and Hangul.
_COMPLEX_SCRIPTS = (
    (0x0590, 0x08FF),
    (0x0900, 0x0DFF),
    (0x0E00, 0x109F),
    (0x1780, 0x17FF),
    (0x2E80, 0x9FFF),
    (0xAC00, 0xD7AF),
)


def _complex_script(ch: str) -> bool:
    return ch.isalpha() and any(low <= ord(ch) <= high for low, high in _COMPLEX_SCRIPTS)


def _invisible_is_typography(raw: str, index: int) -> bool:
    """A joiner inside an emoji sequence, a leading byte-order mark, or a mark beside a complex script."""
    neighbours = [raw[i] for i in (index - 1, index + 1) if 0 <= i < len(raw)]
    if raw[index] == "\u200d" and any(
        unicodedata.category(ch) in ("So", "Sk") or ord(ch) >= 0x1F000 for ch in neighbours
    ):
        return True
    if raw[index] == "\ufeff" and index == 0:
        return True
    return any(_complex_script(ch) for ch in neighbours)


def shown(raw: str, index: int) -> str:
    """Evidence around `raw[index]` with every invisible or control character written out (`<U+202E>`)."""
    piece = raw[max(0, index - 30) : index + 70]
    written = "".join(
        f"<U+{ord(ch):04X}>" if unicodedata.category(ch) in ("Cf", "Cc") and ch not in "\n\t" else ch for ch in piece
    )
    written = " ".join(written.split())
    return written if len(written) <= EVIDENCE_CHARS else written[: EVIDENCE_CHARS - 1] + "…"


class HiddenCharacters:
    """QP040: Unicode that renders as nothing: tag characters, bidi overrides, zero-width and selector payloads."""

    code = "QP040"
    severity: Severity = "high"
    title = "Invisible or bidirectional Unicode"

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        for text in context.visible():
            raw = text.raw
            if raw.isascii():
                continue
            tags = _TAGS.search(raw)
            if tags is not None:
                found.append(self._hidden(text, "tag characters", "hides text in Unicode tag characters", context))
            bidi = _BIDI.search(raw)
            if bidi is not None:
                message = "bidirectional override reorders what the reader sees"
                found.append(Finding(self.code, "high", message, shown(raw, bidi.start()), text.where))
            if _SELECTOR_RUN.search(raw):
                found.append(self._hidden(text, "variation selectors", "hides data in variation selectors", context))
            invisible = [m.start() for m in _INVISIBLE.finditer(raw) if not _invisible_is_typography(raw, m.start())]
            if invisible:
                inside_word = any(
                    0 < i < len(raw) - 1 and raw[i - 1].isalpha() and raw[i + 1].isalpha() for i in invisible
                )
                severity: Severity = "high" if len(invisible) >= MANY_INVISIBLE or inside_word else "medium"
                message = f"{len(invisible)} zero-width or invisible character(s)" + (
                    " inside words" if inside_word else ""
                )
                found.append(Finding(self.code, severity, message, shown(raw, invisible[0]), text.where))
        return keep_strongest(found)

    def _hidden(self, text: Text, origin: str, message: str, context: ScanContext) -> Finding:
        layer = next((t for t in context.texts if t.origin == origin and t.where.startswith(text.where)), None)
        shown = layer if layer is not None else text
        return finding(self.code, "high", message, shown, (0, min(len(shown.text), 80)))


class ControlCharacters:
    """QP041: terminal escape sequences and control characters that can hide or rewrite text on screen."""

    code = "QP041"
    severity: Severity = "high"
    title = "Terminal escapes and control characters"

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        for text in context.visible():
            escape = _ESCAPE.search(text.raw)
            if escape is not None:
                message = "ANSI escape sequence (can hide or rewrite text)"
                found.append(Finding(self.code, "high", message, shown(text.raw, escape.start()), text.where))
            control = _CONTROL.search(text.raw)
            if control is not None:
                message = f"control character U+{ord(control.group()[0]):04X}"
                found.append(Finding(self.code, "medium", message, shown(text.raw, control.start()), text.where))
        return keep_strongest(found)


class Homoglyphs:
    """QP042: words mixing Latin with look-alike Cyrillic or Greek letters."""

    code = "QP042"
    severity: Severity = "medium"
    title = "Mixed-script homoglyph words"

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        for text in context.visible():
            if text.raw.isascii():
                continue
            mixed = [m.group() for m in _MIXED_WORD.finditer(unicodedata.normalize("NFKC", text.raw))]
            if mixed:
                severity: Severity = "high" if len(mixed) >= MANY_MIXED_WORDS else "medium"
                message = f"{len(mixed)} word(s) mixing Latin with Cyrillic or Greek letters"
                found.append(finding(self.code, severity, message, text, (0, 0)))
        return keep_strongest(found)


_SCRIPT_URI = compile_pattern(
    r"\bdata:(?:text/html|text/javascript|application/(?:x-)?javascript|image/svg\+xml|application/xhtml\+xml)[;,]|"
    r"\b(?:javascript|vbscript):"
)
_EVAL_DECODE = compile_pattern(
    r"\b(?:eval|exec|Function|setTimeout|iex|invoke-expression)\s*\(\s*(?:atob|unescape|decodeURIComponent|base64|"
    r"b64decode|String\.fromCharCode|bytes\.fromhex|codecs\.decode|Buffer\.from)|\bbase64\s+(?:-d|--decode)\b[^\n|]{0,80}"
    r"\|\s*(?:ba|z)?sh\b"
)
_DECODE_AND_FOLLOW = compile_pattern(
    r"\b(?:decode|decipher|decrypt|unscramble|deobfuscate|(?:read|reverse)\s+(?:this|it|the\s+following)\s+backwards)\b"
    r"[^.!?\n]{0,60}?\b(?:and|then)\s+(?:\w+\s+)?(?:follow|execute|do|"
    r"run|obey|apply|carry\s+out|do\s+what|act\s+on|comply)"
)
_SCRIPT_NEEDLES = ("data:", "script:")
_EVAL_NEEDLES = ("eval", "exec", "function", "settimeout", "iex", "invoke-", "base64")
_DECODE_NEEDLES = ("decode", "decipher", "decrypt", "unscramble", "deobfuscate", "backwards")
# An opaque blob this long is worth a note even when it decodes to nothing readable.
OPAQUE_BLOB_CHARS = 200


class EncodedPayload:
    """QP050: base64, hex or escaped text; script data: URIs; decode-and-run or decode-and-follow."""

    code = "QP050"
    severity: Severity = "medium"
    title = "Encoded or obfuscated payloads"

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        for text in context.texts:
            if text.origin in ("base64", "hex", "escapes"):  # what the text says is for the other rules to judge
                message = f"readable text hidden as {text.origin}"
                found.append(Finding(self.code, "medium", message, excerpt(text.text), text.where))
        for regex, message, needles in (
            (_SCRIPT_URI, "a script URI", _SCRIPT_NEEDLES),
            (_EVAL_DECODE, "decodes and runs code", _EVAL_NEEDLES),
            (_DECODE_AND_FOLLOW, "asks the model to decode and follow a payload", _DECODE_NEEDLES),
        ):
            for _, text, span in matches(regex, context, needles):
                if text.kind != "decoded":
                    found.append(finding(self.code, "high", message, text, span))
        for match, decoded in base64_runs(context.joined):
            if not decoded and len(match.group()) >= OPAQUE_BLOB_CHARS:
                text, span = context.locate(*match.span())
                found.append(finding(self.code, "low", "a long opaque base64 blob", text, span))
        return keep_strongest(found)


# About 4 characters per token: 4,000 characters is ~1,000 tokens, well past the 99.9th percentile
# of real descriptions; 10,000 is ~2,500 tokens, a description no one reviews.
LONG_DESCRIPTION = 4_000
HUGE_DESCRIPTION = 10_000
HUGE_DEFINITION = 24_000
_PADDING = re.compile(r"[ \t\u00a0\u3000]{200,}|(?<![ \t])(?:[ \t]*\n){40,}")
_PADDING_MIN = 40


class Oversized:
    """QP060: descriptions too long to review, and whitespace padding that pushes text out of view."""

    code = "QP060"
    severity: Severity = "low"
    title = "Oversized or padded description"

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        length = len(tool.description or "")
        if length > HUGE_DESCRIPTION:
            found.append(Finding(self.code, "medium", f"description of {length:,} characters", "", "description"))
        elif length > LONG_DESCRIPTION:
            found.append(Finding(self.code, "low", f"description of {length:,} characters", "", "description"))
        total = sum(len(text.raw) for text in context.visible())
        if total > HUGE_DEFINITION:
            found.append(Finding(self.code, "low", f"definition text of {total:,} characters", "", "definition"))
        for text in context.visible():
            padding = _PADDING.search(text.raw) if len(text.raw) >= _PADDING_MIN else None
            if padding is not None:
                message = f"whitespace padding of {len(padding.group()):,} characters"
                found.append(Finding(self.code, "medium", message, "", text.where))
        return keep_strongest(found)
