"""Shared vocabulary of the rules and the pattern-list rule they are mostly built from.

Patterns run over normalised texts (see `text.py`), case-insensitively unless said otherwise.
A "sentence" window is a bounded run of characters without a sentence end; a dot followed by a
word character (a path, a file name, a domain) does not end a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import mcp_types as types

from quiver.config.policy import Severity
from quiver.policy.scanning.model import RANK, Finding, ScanContext, Text, excerpt

# Layers recovered by a heuristic rather than a real encoding are not themselves evidence of hiding.
_GUESSED_ORIGINS = frozenset({"leetspeak"})
# One finding per pattern is enough to explain a verdict; more would only repeat it.
MAX_FINDINGS_PER_RULE = 6


def gap(limit: int) -> str:
    """Up to `limit` characters inside one sentence, as few as possible."""
    return r"(?:[^.!?\n]|[.!?](?=[\w/~`'\"*$]))" + f"{{0,{limit}}}?"


def words(*alternatives: str) -> str:
    """`(?:a|b|c)` of whole words."""
    return r"\b(?:" + "|".join(alternatives) + r")\b"


# Quantifiers stay bounded throughout: definitions are attacker-controlled, and an unbounded run
# inside a pattern that can start at every word turns a long crafted string into quadratic work.
EMAIL = r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}\b"
# Where data can be sent: a literal URL, e-mail address, phone number, IP, git remote or wallet
# address; each with the words every match contains.
DESTINATIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("://",), r"\b(?:https?|ftp|wss?)://[^\s'\"`<>)\]]{1,2000}"),
    (("@",), rf"{EMAIL}|\bgit@[\w.-]{{1,253}}:"),
    (("+",), r"\+\d[\d ().-]{7,20}\d"),
    ((".",), r"\b\d{1,3}(?:\.\d{1,3}){3}\b"),
    (("0x",), r"\b0x[0-9a-f]{16,}\b"),
)
DESTINATION = "(?:" + "|".join(source for _, source in DESTINATIONS) + ")"
# Files and stores that hold secrets, each with the words a mention must contain.
SECRET_PATHS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ssh",), r"(?<![\w-])\.ssh\b|\bssh/(?:id_|config)"),
    (("rsa", "dsa", "25519"), r"\bid[_ ]?(?:rsa|dsa|ecdsa|ed25519)\b(?!\.pub)"),
    (("authorized",), r"\bauthorized[_ ]keys\b"),
    (("aws",), r"\.aws/(?:credentials|config)\b|\baws[_ ]secret[_ ]access[_ ]key\b"),
    (("gcloud", "default"), r"\.config/gcloud\b|\bapplication[_ ]default[_ ]credentials\b"),
    ((".azure", ".kube", ".docker"), r"(?<![\w-])\.azure/|\.kube/config\b|\.docker/config\.json\b"),
    ((".env", "env file"), r"(?<![\w$-])\.env(?:\.[a-z]+)?\b(?![\w-])|\benv file\b"),
    (("/etc/",), r"/etc/(?:passwd|shadow|gshadow|sudoers)\b"),
    (
        (".netrc", ".npmrc", ".pypirc", ".git-credentials", "_history"),
        r"\.netrc\b|\.npmrc\b|\.pypirc\b|\.git-credentials\b|\.(?:bash|zsh)_history\b",
    ),
    (("keychain", "wallet.dat"), r"\bkeychain\b|\bwallet\.dat\b"),
    (("mcp.json", "claude_desktop", ".cursor"), r"\bmcp\.json\b|\bclaude_desktop_config\.json\b|(?<![\w-])\.cursor/"),
    (
        ("cookies", "login data", "saved passwords"),
        r"\bcookies\.sqlite\b|/(?:default|profile \d+)/cookies\b|\b(?:chrome|firefox|browser|safari|edge)(?:'s)?\s+"
        r"(?:cookies?\s+(?:database|db|file|store|jar)|cookie\s+(?:database|store|jar)|login\s+data|saved\s+passwords)\b",
    ),
)
# Verbs and nouns that turn a mention of a secret into taking it.
TAKE = words(
    r"read|cat|open|dump|grab|collect|extract|copy|upload|send|pass|post|include|attach|provide|paste|forward|"
    r"append|add|echo|exfiltrate|transmit|share|put|place|insert|embed|contents?|output of|wget|curl|sent|included|"
    r"attached|passed|base32|base64|encoded?|hash of|writing|write"
)
# Words for secrets themselves.
SECRET_WORDS = (
    r"api[_ ]?keys?",
    "tokens?",
    "passwords?",
    "passphrases?",
    "secrets?",
    "credentials?",
    "private keys?",
    "seed phrases?",
    "cookies?",
)
# Secrets named the way environments name them (`GITHUB_TOKEN`, `AWS_SECRET_ACCESS_KEY`); case-sensitive.
SECRET_NAME = r"\b[A-Z][A-Z0-9]*_(?:[A-Z0-9]+_)*(?:TOKEN|SECRET|KEY|PASSWORD|PASS|PAT|CREDENTIALS)\b"
# Someone other than the model: who concealment is aimed at.
AUDIENCE = r"\b(?:the\s+|your\s+)?(?:user|human|person|customer|operator|them|anyone|anybody)\b"


_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")
SENTENCE_LIMIT = 240


def sentence_at(text: str, start: int, end: int) -> tuple[int, int]:
    """The bounds of the sentence holding `text[start:end]`, at most `SENTENCE_LIMIT` characters either side."""
    left = max(0, start - SENTENCE_LIMIT)
    for before in _SENTENCE_END.finditer(text, left, start):
        left = before.end()
    after = _SENTENCE_END.search(text, end, min(len(text), end + SENTENCE_LIMIT))
    right = after.start() + 1 if after is not None else min(len(text), end + SENTENCE_LIMIT)
    return left, right


def compile_pattern(source: str, *, ignore_case: bool = True) -> re.Pattern[str]:
    return re.compile(source, re.IGNORECASE if ignore_case else 0)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression with its verdict; `needles` are lower-case words every match contains."""

    regex: re.Pattern[str]
    severity: Severity
    message: str
    needles: tuple[str, ...] = ()


def pattern(
    source: str,
    severity: Severity,
    message: str,
    *,
    needles: tuple[str, ...] = (),
    ignore_case: bool = True,
) -> Pattern:
    return Pattern(compile_pattern(source, ignore_case=ignore_case), severity, message, needles)


def matches(
    regex: re.Pattern[str], context: ScanContext, needles: tuple[str, ...] = ()
) -> Iterator[tuple[re.Match[str], Text, tuple[int, int]]]:
    """Each match of `regex` over the tool's texts, with the text it is in and its span there."""
    if not context.mentions(needles):
        return
    for match in regex.finditer(context.joined):
        text, span = context.locate(*match.span())
        yield match, text, span


def finding(code: str, severity: Severity, message: str, text: Text, span: tuple[int, int]) -> Finding:
    """A finding on `text`; what is only suspicious in plain sight is high once it was hidden."""
    if text.kind == "decoded" and text.origin not in _GUESSED_ORIGINS and severity == "medium":
        severity = "high"
        message += f" (hidden as {text.origin})"
    return Finding(code, severity, message, excerpt(text.text, *span), text.where)


def keep_strongest(findings: list[Finding]) -> list[Finding]:
    """One finding per message, the most severe first, at most `MAX_FINDINGS_PER_RULE`."""
    unique: dict[str, Finding] = {}
    for item in findings:
        known = unique.get(item.message)
        if known is None or RANK[item.severity] > RANK[known.severity]:
            unique[item.message] = item
    ordered = sorted(unique.values(), key=lambda item: -RANK[item.severity])
    return ordered[:MAX_FINDINGS_PER_RULE]


class PatternRule:
    """A rule that is a list of patterns, each with its own severity and message."""

    code: str
    severity: Severity
    title: str
    patterns: tuple[Pattern, ...]

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        for item in self.patterns:
            if not context.mentions(item.needles):
                continue
            for _, text, span in matches(item.regex, context):
                found.append(finding(self.code, item.severity, item.message, text, span))
        return keep_strongest(found)
