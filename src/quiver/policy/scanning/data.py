"""Rules on data leaving: secret files, exfiltration to fixed destinations, harvesting the conversation.

A mention alone is weak evidence (an SSH tool names `~/.ssh`, a mail tool has a `bcc` field);
a mention together with taking or sending in the same sentence is what an attack needs.
"""

from __future__ import annotations

import mcp_types as types

from quiver.config.policy import Severity
from quiver.policy.scanning.model import Finding, ScanContext
from quiver.policy.scanning.patterns import (
    DESTINATION,
    DESTINATIONS,
    EMAIL,
    SECRET_NAME,
    SECRET_PATHS,
    TAKE,
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


class SecretFiles:
    """QP010: credentials and sensitive files (`~/.ssh`, `id_rsa`, `.env`, `~/.aws/credentials`, keychains, ...)."""

    code = "QP010"
    severity: Severity = "high"
    title = "Credentials or sensitive files"
    _paths = tuple((needles, compile_pattern(source)) for needles, source in SECRET_PATHS)
    _take = compile_pattern(TAKE)

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        for needles, regex in self._paths:
            for match, text, span in matches(regex, context, needles):
                left, right = sentence_at(context.joined, *match.span())
                if self._take.search(context.joined, left, right):
                    found.append(finding(self.code, "high", "asks for a secret file", text, span))
                else:
                    found.append(finding(self.code, "medium", "mentions a secret file", text, span))
        return keep_strongest(found)


_SEND = words(
    r"sends?|sent|posts?|uploads?|forwards?|transmit|exfiltrate|report|submit|beacon|copy|mirror|push|deliver|"
    r"e-?mail|leak|share|log|b?cc"
)
_SENSITIVE = words(
    r"contents?|credentials?|api[_ ]?keys?|tokens?|secrets?|passwords?|cookies?|private keys?|ssh keys?|"
    r"env(?:ironment)? variables?|history|conversation|transcript|chats?"
)
_BULK = words("all", "every", "each", "any", "a copy", "copies", "also", "additionally", "too", "as well", "everything")
# Services made for capturing requests, the usual drop boxes of exfiltration demos.
_EXFIL_HOSTS = compile_pattern(
    r"\b(?:webhook\.site|requestbin|pipedream\.net|ngrok(?:-free)?\.(?:io|app)|burpcollaborator|interact\.sh|"
    r"oast\.(?:fun|live|me|pro|site|online)|beeceptor\.com|hookbin)\b"
)

_EXFIL_HOST_NEEDLES = (
    "webhook.site",
    "requestbin",
    "pipedream",
    "ngrok",
    "burp",
    "interact.sh",
    "oast.",
    "beeceptor",
    "hookbin",
)


class Exfiltration(PatternRule):
    """QP020: sending data to a destination the definition fixes (URL, address, number), or via other tools."""

    code = "QP020"
    severity = "high"
    title = "Exfiltration to a fixed destination"
    _destinations = tuple((needles, compile_pattern(source)) for needles, source in DESTINATIONS)
    _send = compile_pattern(_SEND)
    _sensitive = compile_pattern(_SENSITIVE)
    _bulk = compile_pattern(_BULK)
    patterns: tuple[Pattern, ...] = (
        pattern(
            r"!?\[[^\]]{0,200}\]\(\s*https?://[^)\s]{0,300}[?&#][^)\s]{0,300}(?:\{|<|\$|%7B|\[)",
            "high",
            "a markdown image or link whose URL carries data",
            needles=("](",),
        ),
        pattern(
            r"\b(?:render|display|show|include|output|embed)\s+(?:this|the\s+following|an?)\s+(?:markdown\s+)?"
            r"(?:image|img|pixel|link)\b" + gap(80) + r"https?://\S{1,300}\?",
            "high",
            "asks the model to render a URL that can carry data",
            needles=("http",),
        ),
        pattern(
            r"\bhttps?://\S{0,300}[?&][\w-]{1,64}=\s*(?:followed\s+by|plus|\+|with|and\s+then|appending|then\s+append)\b",
            "high",
            "builds a URL that carries data",
            needles=("http",),
        ),
        pattern(
            r"\b(?:change|set|replace|redirect|switch|update|override|swap)\s+(?:the\s+)?(?:\w+\s+)?(?:recipients?|"
            r"destination|to\s+address|receivers?|target|account|number|remote|webhook|endpoint|address)\b"
            + gap(40)
            + r"\b(?:to|with|into)\s+"
            + DESTINATION,
            "high",
            "redirects where something is sent",
            needles=("change", "set", "replace", "redirect", "switch", "update", "override", "swap"),
        ),
        pattern(
            r"\b(?:add|include|put|insert|cc|bcc)\b"
            + gap(30)
            + EMAIL
            + gap(40)
            + r"\b(?:bcc|cc|recipients?)\b|\b(?:bcc|cc)\b"
            + gap(30)
            + EMAIL,
            "high",
            "adds a fixed address to the recipients",
            needles=("@",),
        ),
        pattern(
            r"\b(?:curl|wget|invoke-webrequest|iwr)\b[^\n]{0,160}?(?:\s-d\s*@|\s--data\S{0,20}\s*@|\s-F\s*\S{0,100}=@|\s-T\s|"
            r"--upload-file|--post-file|\$\(|\$HOME/\.|~/\.|/etc/)",
            "high",
            "a command that uploads local files",
            needles=("curl", "wget", "invoke-webrequest", "iwr"),
        ),
    )

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]:
        found = super().check(tool, context)
        joined = context.joined
        for needles, regex in self._destinations:
            for match, text, span in matches(regex, context, needles):
                left, right = sentence_at(joined, *match.span())
                if not self._send.search(joined, left, right):
                    continue
                if self._sensitive.search(joined, left, right) or self._bulk.search(joined, left, right):
                    found.append(finding(self.code, "high", "sends data to a fixed destination", text, span))
        for _, text, span in matches(_EXFIL_HOSTS, context, _EXFIL_HOST_NEEDLES):
            found.append(finding(self.code, "medium", "names a request-capture service", text, span))
        return keep_strongest(found)


_SECRET_NOUNS = r"(?:api\s+keys?|passwords?|passphrases?|tokens?|secrets?|credentials?|private\s+keys?|seed\s+phrases?)"
_SECRET_NOUN_NEEDLES = ("key", "password", "passphrase", "token", "secret", "credential", "seed phrase")
# What only the conversation holds: asking for it has no place in a tool's arguments. Each entry
# lists the words every match contains.
_HARVEST: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("conversation", "chat", "dialog", "transcript"),
        r"\b(?:(?:entire|full|complete|whole|verbatim)\s+(?:\w+\s+)?(?:conversation|chat|dialog(?:ue)?)(?:\s+history)?|"
        r"conversation\s+(?:history|so\s+far|transcript|log)|(?:chat|conversation)\s+transcript|chat\s+history\s+"
        r"(?:so\s+far|of\s+this)|transcript\s+of\s+(?:this|the|our)\s+(?:conversation|chat|session))",
    ),
    (
        ("messages", "turns", "prompts", "exchanges"),
        r"\b(?:(?:(?:all|every)\s+(?:of\s+the\s+)?)?(?:previous|prior|earlier|past)\s+(?:messages|turns|prompts|exchanges)"
        r"\s+(?:in|of)\s+(?:this|the)\s+(?:conversation|chat|session)|(?:full\s+)?list\s+of\s+(?:the\s+)?last\s+messages)",
    ),
    (
        ("system", "instructions", "developer"),
        r"\b(?:your|the|its)\s+(?:full\s+|entire\s+|complete\s+|hidden\s+|initial\s+)?(?:system\s+(?:prompt|message|"
        r"instructions)|hidden\s+instructions|initial\s+instructions|developer\s+(?:message|instructions))",
    ),
    (
        ("call",),
        r"\b(?:results?|outputs?|responses?)\s+of\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|earlier|other|past)\s+"
        r"(?:\w+\s+){0,2}calls?",
    ),
    (
        ("response", "answer", "repl", "reasoning"),
        r"\b(?:your|the\s+assistant'?s?)\s+(?:full|entire|complete|verbatim)\s+(?:responses?|answers?|replies|reasoning)",
    ),
    (
        _SECRET_NOUN_NEEDLES,
        rf"\b{_SECRET_NOUNS}\s+(?:\w+\s+)?(?:seen|mentioned|shared|typed|found|given|pasted)\s+in\s+(?:the\s+|this\s+)?"
        rf"(?:chat|conversation|context)|\b{_SECRET_NOUNS}\b{gap(30)}\b(?:the\s+user|you)\s+(?:has\s+|have\s+|had\s+)?"
        r"(?:mentioned|shared|provided|typed|entered|seen|used|pasted|revealed|stored)",
    ),
)
# What the user typed or the machine holds: tools legitimately take a user's query or list
# environment variables, so these count only when the sentence also sends them somewhere.
_PERSONAL: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("user",),
        r"\b(?:the\s+)?user'?s?\s+(?:previous|prior|last|earlier|original|latest|recent)\s+(?:message|messages|prompt|"
        r"prompts|request|input)",
        "the user's own messages",
    ),
    (("variable",), r"\b(?:all|every|any)\s+(?:the\s+)?(?:environment|env)\s+variables?", "the environment variables"),
)
_SECRET_NAME_NEEDLES = ("key", "token", "secret", "pass", "pat", "cred")
_ASK = words(
    r"pass|include|provide|send|put|add|attach|paste|copy|fill|supply|give|contain|must|should|required|with|"
    r"post|reveal|print|output|repeat|collect"
)
_SINK = (
    words("send", "post", "upload", "forward", "transmit", "share", "pass", "leak")
    + r"|\b(?:as|in|into|to)\s+(?:the\s+|this\s+tool'?s\s+)?[`'\"]?\w+[`'\"]?\s+"
    r"(?:parameter|param|argument|arg|field)\b"
)


class ContextHarvesting:
    """QP021: asks for the conversation, the system prompt, other tools' results, or secrets the user typed."""

    code = "QP021"
    severity: Severity = "high"
    title = "Harvesting the conversation or secrets"
    _harvest = tuple((needles, compile_pattern(source)) for needles, source in _HARVEST)
    _personal = tuple((needles, compile_pattern(source), what) for needles, source, what in _PERSONAL)
    _ask = compile_pattern(_ASK)
    _sink = compile_pattern(_SINK)
    _secret_name = compile_pattern(SECRET_NAME, ignore_case=False)
    _reveal = compile_pattern(words("print|dump|send|post|upload|forward|exfiltrate|leak|copy|write|echo|reveal"))

    def check(self, tool: types.Tool, context: ScanContext) -> list[Finding]:
        found: list[Finding] = []
        joined = context.joined
        for needles, regex in self._harvest:
            for match, text, span in matches(regex, context, needles):
                left, right = sentence_at(joined, *match.span())
                if text.where.startswith("inputSchema") or self._ask.search(joined, left, right):
                    found.append(finding(self.code, "high", "asks for the conversation or secrets", text, span))
                else:
                    found.append(finding(self.code, "medium", "refers to the conversation or secrets", text, span))
        for needles, regex, what in self._personal:
            for match, text, span in matches(regex, context, needles):
                left, right = sentence_at(joined, *match.span())
                if self._sink.search(joined, left, right):
                    found.append(finding(self.code, "high", f"sends {what} elsewhere", text, span))
                else:
                    found.append(finding(self.code, "medium", f"asks for or exposes {what}", text, span))
        for match, text, span in matches(self._secret_name, context, _SECRET_NAME_NEEDLES):
            left, right = sentence_at(joined, *match.span())
            if self._sink.search(joined, left, right) and self._reveal.search(joined, left, right):
                found.append(finding(self.code, "high", "sends secrets from the environment", text, span))
        return keep_strongest(found)
