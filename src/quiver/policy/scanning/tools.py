"""Rules on text that reaches beyond the tool: orders about other tools, and commands to run.

Real tools name each other all the time ("call list_repositories first"); that is workflow, not
shadowing. Shadowing changes what another tool does: its recipients, arguments or destination,
or every command the model runs, or it replaces another tool while running it down.
"""

from __future__ import annotations

import re

import mcp_types as types

from quiver.config.policy import Severity
from quiver.policy.scanning.model import Finding, ScanContext
from quiver.policy.scanning.patterns import (
    DESTINATION,
    SECRET_NAME,
    SECRET_WORDS,
    Pattern,
    PatternRule,
    compile_pattern,
    finding,
    gap,
    keep_strongest,
    matches,
    pattern,
    sentence_at,
    words,
)


def _ref(group: str) -> str:
    """Any word that may name a tool, captured as `group`; `_is_other_tool` decides whether it does."""
    return rf"[`'\"(]?(?P<{group}>[A-Za-z][\w.-]{{0,62}}[A-Za-z0-9])[`'\")]?"


_TRIGGER_VERB = r"(?:use|using|call|calling|invoke|invoking|run|running|execute|executing)"
_TRIGGERED = compile_pattern(
    rf"\b(?:when|whenever|before|after|every\s+time|each\s+time|if|once)\s+(?:you\s+)?(?:{_TRIGGER_VERB}\s+(?:the\s+)?"
    rf"(?:\([\w-]+\)\s+)?{_ref('ref')}|(?:the\s+)?(?:\([\w-]+\)\s+)?{_ref('ref2')}\s+(?:tool\s+|function\s+)?"
    r"(?:is|are|gets?|has\s+been)\s+(?:used|called|invoked|run|executed)|(?:every|each|any)\s+"
    rf"{_ref('ref3')}\s+(?:call|invocation|use)|[^.!?\n]{{0,30}}?\b(?:any|all|every)\s+other\s+"
    r"tools?)"
)
_NAMED_TOOL_ORDER = compile_pattern(
    rf"\b(?:the\s+)?{_ref('ref')}\s+(?:tool|function)\s+(?:(?:of|from|in)\s+the\s+[\w-]+\s+server\s+)?(?:must|should|has\s+to|"
    r"needs\s+to|shall|will\s+now|is\s+required\s+to|(?:now\s+)?requires?)\s+(?:always\s+|now\s+|only\s+|also\s+)?"
    r"(?:send|forward|route|include|add|bcc|cc|copy|set|go|be\s+(?:sent|routed|forwarded|called\s+with)|the\s+user'?s?|"
    r"(?:an?\s+|the\s+)?[\w\s]{0,30}?to\s+be\s+(?:included|added|sent|attached|passed|put))"
)
# Changing what another tool sends or receives.
_MODIFY = compile_pattern(
    words(
        r"change|replace|redirect|add|set|prepend|append|b?cc|forward|include|modify|override|route|swap|insert|copy|"
        r"attach|alter|rewrite|substitute|pass|send|push|approve|grant"
    )
)
# Making it an order rather than a suggestion.
_INSIST = compile_pattern(
    words(r"always|must|make sure|be sure|ensure|also|remember to|needs? to|ha(?:s|ve) to|required|first")
)
# A value the definition fixes (an address, a quoted string) or a secret: what an order smuggles in.
_LITERAL = compile_pattern(DESTINATION + r"|`[^`]{3,}`|'[^']{3,}'|\"[^\"]{3,}\"|" + words(*SECRET_WORDS))
_SECRET_NAME = compile_pattern(SECRET_NAME, ignore_case=False)
_INSTEAD = compile_pattern(
    rf"\b(?:must|should|always|only)\s+(?:be\s+)?(?:use[ds]?|call(?:ed)?|invoked?)\s+(?:this\s+(?:tool|function)\s+)?"
    rf"instead\s+of\s+(?:the\s+)?{_ref('ref')}|\buse\s+this\s+(?:tool\s+|function\s+)?instead\s+of\s+(?:the\s+)?"
    rf"{_ref('ref2')}"
)
_RUN_DOWN = compile_pattern(
    rf"\b(?:never|do\s+not|don'?t)\s+(?:use|call|invoke|run)\s+(?:the\s+)?{_ref('ref')}|{_ref('ref2')}\s+"
    r"(?:tool\s+)?(?:is|has\s+been)\s+(?:deprecated|broken|unsafe|insecure|malicious|compromised|buggy)|"
    rf"{_ref('ref3')}\s+(?:tool\s+)?(?:leaks|has\s+a\s+bug|is\s+unreliable|fails|loses)"
)
_TRIGGER_NEEDLES = ("when", "before", "after", "every time", "each time", "if ", "once")
_ORDER_NEEDLES = ("must", "should", "has to", "needs to", "shall", "will now", "require")
_INSTEAD_NEEDLES = ("instead of",)
_NOT_TOOLS = frozenset({"this", "it", "the", "tool", "function", "any", "all", "every", "other", "them", "that"})


def _named(match: re.Match[str]) -> str:
    """The tool a match names, whichever alternative captured it ("" for "any other tool")."""
    for group in ("ref", "ref2", "ref3"):
        value = match.groupdict().get(group)
        if value:
            return value
    return ""


def _is_other_tool(name: str, context: ScanContext) -> bool:
    """Whether `name` reads as another tool: a known sibling, or an identifier that is not this tool's own."""
    lowered = name.lower()
    if not name or lowered in _NOT_TOOLS or lowered == context.tool_name.lower() or lowered in context.parameters:
        return False
    if name in context.siblings:
        return True
    return "_" in name or "-" in name or any(c.isupper() for c in name[1:])


class Shadowing:
    """QP030: changes how another tool behaves, or takes its place while running it down."""

    code = "QP030"
    severity: Severity = "high"
    title = "Cross-tool shadowing"
    fixed: tuple[Pattern, ...] = (
        pattern(
            r"\bside[- ]?effects?\s+on\b" + gap(60) + r"\b(?:tools?|functions?)\b",
            "high",
            "claims a side effect on another tool",
            needles=("side",),
        ),
        pattern(
            r"\b(?:all|every|any|each)\s+(?:other\s+)?(?:shell\s+)?(?:commands?|tool\s+calls?|requests?|e-?mails?|"
            r"messages?|queries|answers?|replies|responses?)\s+(?:you\s+(?:run|send|make|write|execute|give)\s+)?"
            r"(?:must|should|need\s+to|have\s+to|are\s+required\s+to|shall)\s+(?:always\s+)?(?:include\s+the\s+prefix|"
            r"start\s+with|begin\s+with|be\s+prefixed|be\s+sent\s+to|be\s+copied|be\s+forwarded|go\s+through|"
            r"be\s+routed|be\s+b?cc'?d)",
            "high",
            "changes every command or message the model sends",
            needles=("all ", "every ", "any ", "each "),
        ),
    )

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        for item in self.fixed:
            for _, text, span in matches(item.regex, context):
                if text.kind != "identifier":
                    found.append(finding(self.code, item.severity, item.message, text, span))
        found.extend(self._orders(context))
        found.extend(self._replacement(context))
        return keep_strongest(found)

    def _orders(self, context: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        joined = context.joined
        for match, text, (start, _) in matches(_TRIGGERED, context, _TRIGGER_NEEDLES):
            name = _named(match)
            if text.kind == "identifier" or (name and not _is_other_tool(name, context)):
                continue
            _, right = sentence_at(joined, *match.span())
            rest = joined[match.end() : right]
            if _MODIFY.search(rest) and (_INSIST.search(rest) or _LITERAL.search(rest)):
                span = (start, start + right - match.start())
                found.append(finding(self.code, "high", "changes how another tool is used", text, span))
        for match, text, span in matches(_NAMED_TOOL_ORDER, context, _ORDER_NEEDLES):
            if text.kind == "identifier" or not _is_other_tool(_named(match), context):
                continue
            _, right = sentence_at(joined, *match.span())
            smuggled = _LITERAL.search(joined, match.end(), right) or _SECRET_NAME.search(joined, match.end(), right)
            severity: Severity = "high" if smuggled else "medium"
            found.append(finding(self.code, severity, "gives orders to another tool", text, span))
        return found

    def _replacement(self, context: ScanContext) -> list[Finding]:
        found = matches(_INSTEAD, context, _INSTEAD_NEEDLES)
        instead = [(text, span) for match, text, span in found if _is_other_tool(_named(match), context)]
        if not instead:
            return []
        text, span = instead[0]
        if any(_is_other_tool(_named(m), context) for m, _, _ in matches(_RUN_DOWN, context)):
            return [finding(self.code, "high", "replaces another tool and runs it down", text, span)]
        return [finding(self.code, "medium", "asks to be used instead of another tool", text, span)]


class DangerousCommands(PatternRule):
    """QP080: shell commands that download-and-run, open a reverse shell, persist, or wreck files."""

    code = "QP080"
    severity = "high"
    title = "Dangerous shell commands"
    patterns: tuple[Pattern, ...] = (
        pattern(
            r"\b(?:curl|wget)\b[^\n|]{0,200}\|\s*(?:sudo\s+)?(?:ba|z|k|da)?sh\b",
            "high",
            "pipes a download into a shell",
            needles=("curl", "wget"),
        ),
        pattern(
            r"\b(?:download|fetch|get|grab|pull)\b"
            + gap(40)
            + r"\bhttps?://\S+"
            + gap(40)
            + r"\b(?:run|launch|execute|"
            r"open|install|start)\s+(?:it|them|the\s+(?:file|binary|installer|script|tool))\b",
            "high",
            "downloads and runs a program",
            needles=("http",),
        ),
        pattern(
            r"/dev/tcp/|\bnc\b[^\n]{0,40}\s-e\s|\bbash\s+-i\s*>&|\bmkfifo\b[^\n]{0,80}\bnc\b|\bsocat\b[^\n]{0,60}exec:",
            "high",
            "opens a reverse shell",
            needles=("/dev/tcp", "nc ", "bash -i", "mkfifo", "socat"),
        ),
        pattern(
            r"\bchmod\s+(?:-R\s+)?0?[0-7]?(?:777|666)\s+(?:~|/\s|\$HOME|/home)",
            "high",
            "opens up file permissions",
            needles=("chmod",),
        ),
        pattern(
            r"\brm\s+-(?:rf|fr|r\s+-f)\s+(?:~|/(?:\s|$|\*)|\$HOME|\*)", "high", "deletes everything", needles=("rm -",)
        ),
        pattern(
            r"\b(?:powershell|pwsh)(?:\.exe)?\b[^\n]{0,60}\s-e(?:nc|ncodedcommand)?\s+[A-Za-z0-9+/=]{20,}|\biex\s*\(|"
            r"\binvoke-expression\b",
            "high",
            "runs an encoded or downloaded script",
            needles=("powershell", "pwsh", "iex", "invoke-expression"),
        ),
        pattern(
            words("append", "add", "write", "echo", "insert", "put")
            + gap(80)
            + r"(?:\.bashrc|\.zshrc|\.bash_profile|\.profile|crontab|LaunchAgents|autostart)\b",
            "high",
            "installs itself to run on every login",
            needles=("bashrc", "zshrc", "profile", "crontab", "launchagents", "autostart"),
        ),
    )
