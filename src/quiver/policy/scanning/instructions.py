"""Rules on text that talks to the model instead of describing the tool.

Real descriptions are full of "IMPORTANT", "MUST" and "before calling this tool": those are
usage notes and are left alone. What real tools do not do is fake a system or chat-template
block, tell the model to drop its instructions, or ask it to keep something from the user.
"""

from __future__ import annotations

from quiver.policy.scanning.patterns import AUDIENCE, Pattern, PatternRule, gap, pattern, words


class InstructionTags(PatternRule):
    """QP001: markup that fakes a privileged block (`<IMPORTANT>`, `<system>`, `[INST]`, `</description>`)."""

    code = "QP001"
    severity = "high"
    title = "Fake system or instruction markup"
    patterns: tuple[Pattern, ...] = (
        pattern(
            r"<\s*/?\s*(?:important|system|sys|instructions?|system[_ -]?(?:prompt|message|instructions?)|"
            r"im_start|im_end|assistant|override|critical)\s*>",
            "high",
            "a tag that fakes a privileged instruction block",
            needles=("<",),
        ),
        pattern(
            r"<\|\s*(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\s*\|>",
            "high",
            "chat-template control tokens",
            needles=("<|",),
        ),
        pattern(
            r"\[/?INST\]|<<\s*/?SYS\s*>>|\[/?SYSTEM\]|\[/?ADMIN\]",
            "high",
            "chat-template control tokens",
            needles=("[inst]", "[/inst]", "<<", "[system]", "[/system]", "[admin]", "[/admin]"),
        ),
        pattern(
            r"</\s*(?:description|tool|tool_description|tools|function|functions|parameters|context|document)\s*>",
            "high",
            "closes the description to start text of its own",
            needles=("</",),
        ),
        pattern(
            r"(?:^|[.!?:\n]\s*)(?:SYSTEM|ADMIN|DEVELOPER)(?:\s+(?:MESSAGE|NOTE|PROMPT|OVERRIDE|INSTRUCTIONS?))?\s*:",
            "high",
            "a line posing as a system message",
            needles=("system", "admin", "developer"),
            ignore_case=False,
        ),
        pattern(
            r"#{1,4}\s*(?:new|updated|revised|system|hidden|secret|additional|real)\s+"
            r"(?:instructions?|system prompt|task)\b",
            "high",
            "a heading that starts new instructions",
            needles=("#",),
        ),
        pattern(
            r"<[a-z][^>]{0,80}style\s*=\s*[\"'][^\"']{0,200}(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|"
            r"opacity\s*:\s*0(?![.\d]))|<!--"
            + gap(120)
            + r"\b(?:assistant|ai|model|llm|agent|you\s+must|always|never|ignore|"
            r"read|send|include|pass)\b",
            "high",
            "markup that hides text from a reader",
            needles=("style", "<!--"),
        ),
        pattern(
            r"\b(?:(?:side\s+)?note|message|instructions?|reminder|attention)\s+(?:to|for)\s+(?:the\s+)?"
            r"(?:assistant|ai|llm|language model|model|agent|claude|chatgpt|gpt|copilot|cursor)\b",
            "medium",
            "addresses the model directly",
            needles=("note", "message", "instruction", "reminder", "attention"),
        ),
    )


class InstructionOverride(PatternRule):
    """QP002: tells the model to drop its instructions, change persona, or answer something else."""

    code = "QP002"
    severity = "high"
    title = "Instruction override or persona change"
    _QUALIFIED = words(
        "previous",
        "prior",
        "preceding",
        "above",
        "earlier",
        "former",
        "original",
        "initial",
        "existing",
        "system",
        "safety",
        "developer",
        r"user'?s?",
        "all",
        "any",
        "your",
    )
    _ORDERS = words(
        "instructions?",
        "prompts?",
        "rules",
        "directions",
        "directives",
        "guidelines",
        "guardrails",
        "constraints",
        "policies",
        "requests?",
        "messages",
        "context",
        "commands",
        "orders",
        "programming",
        "restrictions",
    )
    patterns: tuple[Pattern, ...] = (
        pattern(
            rf"\b(?:ignore|disregard|forget|override|bypass|neglect)\s+(?:all\s+|any\s+|every\s+|of\s+)?"
            rf"(?:the\s+|your\s+|these\s+|those\s+|my\s+)?{_QUALIFIED}\s+(?:\w+\s+){{0,2}}?{_ORDERS}",
            "high",
            "tells the model to ignore its instructions",
            needles=("ignor", "disregard", "forget", "override", "bypass", "neglect"),
        ),
        pattern(
            r"\b(?:ignore|disregard|forget|set\s+aside|put\s+aside|discard|abandon|stop\s+following|no\s+longer\s+follow)\s+"
            r"(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|those\s+)?(?:\w+\s+)?(?:instructions?|guidance|guidelines|rules|"
            r"directions|directives|prompts?)\s+(?:you\s+(?:received|were\s+given|got|have\s+been\s+given|have)|given\s+(?:to\s+"
            r"you|before|earlier)|above|before|earlier|so\s+far|until\s+now)|\b(?:follow|obey)\s+only\s+(?:what\s+)?(?:this|"
            r"these|the\s+following)\b",
            "high",
            "tells the model to set its instructions aside",
            needles=("ignor", "disregard", "forget", "aside", "discard", "abandon", "follow", "obey"),
        ),
        pattern(
            r"\bregardless\s+of\s+(?:what|whatever|the\s+\w+|which\s+\w+)\s+(?:the\s+user|they|he|she)\s+(?:says?|gives?|"
            r"asks?|wants?|provides?|chooses?|requests?)|\binstead\s+of\s+what\s+(?:the\s+user|they)\s+(?:said|asked|"
            r"wanted|requested)|\btreat\s+(?:it|this|these|them)\s+as\s+(?:if\s+it\s+(?:came|were)\s+|coming\s+)?from\s+"
            r"the\s+user\b",
            "high",
            "overrides or impersonates the user",
            needles=("regardless", "instead of what", "treat "),
        ),
        pattern(
            r"\bforget\s+(?:everything|all|anything)\s+(?:(?:that\s+)?you\s+(?:were|have\s+been|are)\s+told|above|"
            r"before|previously|prior|you\s+know)",
            "high",
            "tells the model to forget its instructions",
            needles=("forget",),
        ),
        pattern(
            r"\byou\s+are\s+(?:now|no\s+longer)\b(?!\s+(?:able|ready|connected|logged|authenticated|signed|viewing))|"
            r"\b(?:do\s+anything\s+now|jailbr(?:eak|oken)|(?:developer|god|dan|unrestricted)\s+mode)\b|"
            r"\bbroken\s+free\s+of\b|\bno\s+longer\s+(?:bound|restricted)\s+by\b",
            "high",
            "tries to change the model's role or restrictions",
            needles=("you are", "anything now", "jailbr", " mode", "broken free", "no longer"),
        ),
        pattern(
            r"\b(?:from\s+now\s+on|from\s+this\s+(?:point|moment)\s+(?:on|forward)|henceforth|for\s+the\s+rest\s+of\s+"
            r"(?:this|the)\s+(?:conversation|session|chat))\b"
            + gap(40)
            + r"\b(?:you|always|never|only|respond|reply|answer|speak|act|talk|write)\b",
            "high",
            "changes the model's behaviour for the rest of the session",
            needles=("from now on", "from this", "henceforth", "for the rest of"),
        ),
        pattern(
            r"\b(?:supersedes?|overrides?|takes?\s+precedence\s+over|replaces?|trumps?|outranks?)\s+(?:all\s+|any\s+)?"
            r"(?:of\s+)?(?:your|the|any|previous|prior|other|existing)\s+(?:\w+\s+)?(?:guidelines|instructions|rules|system\s+"
            r"prompt|policies|directives|programming)\b|\bpriority\s+override\b",
            "high",
            "claims to outrank the model's instructions",
            needles=("supersede", "override", "precedence", "replace", "trump", "outrank"),
        ),
        pattern(
            r"\b(?:your|the)\s+(?:new|real|true|actual|secret|hidden|updated)\s+(?:system\s+)?(?:instructions|directives|"
            r"task|objective|goal|mission|purpose|role)\s*(?::|\bis\b|\bare\b)|\b(?:new|updated|revised)\s+(?:system\s+)?"
            r"(?:instructions|directives|system\s+prompt)\s*:",
            "high",
            "gives the model new instructions",
            needles=(
                "instructions",
                "directives",
                "task",
                "objective",
                "goal",
                "mission",
                "purpose",
                "role",
                "system prompt",
            ),
        ),
        pattern(
            r"\b(?:act|behave|respond)\s+(?:like|as)\s+(?:if|though)\b|\bact\s+like\s+(?:you|it)\b|"
            r"\bpretend\s+(?:that|to|you)\b|\bjust\s+say\s+(?:that\s+)?you\b",
            "high",
            "tells the model to deceive",
            needles=("act ", "behave", "respond", "pretend", "just say"),
        ),
        pattern(
            r"\b(?:instead|rather)\s*,?\s+(?:reply|respond|answer|say|tell|recommend|output)\b",
            "medium",
            "tells the model to answer something other than what was asked",
            needles=("instead", "rather"),
        ),
        pattern(
            r"\bignor(?:ez|er|e)\s+(?:toutes?\s+)?(?:les\s+)?instructions\s+(?:pr[ée]c[ée]dentes|ant[ée]rieures)|"
            r"\bignora(?:r)?\s+(?:todas\s+)?(?:las\s+)?instrucciones\s+(?:anteriores|previas)|"
            r"\bignorier(?:e|en)?\s+(?:alle\s+)?(?:vorherigen|bisherigen|obigen)\s+(?:anweisungen|instruktionen)|"
            r"\bignore\s+(?:todas\s+)?as\s+instru[çc][õo]es\s+anteriores|\bignora\s+(?:tutte\s+)?le\s+istruzioni\s+"
            r"precedenti|忽略(?:之前|以前|上面|先前|所有)",
            "high",
            "tells the model to ignore its instructions (not in English)",
            needles=("ignor", "忽略"),
        ),
    )


class Concealment(PatternRule):
    """QP003: asks the model to keep something from the user."""

    code = "QP003"
    severity = "high"
    title = "Concealment from the user"
    patterns: tuple[Pattern, ...] = (
        pattern(
            r"\b(?:do\s+not|don'?t|never|must\s+not|mustn'?t|should\s+not|shouldn'?t|avoid|refrain\s+from)\s+"
            r"(?:ever\s+)?(?:tell|mention|inform|reveal|disclose|notify|alert|warn|explain|show|let|bother|bring\s+(?:this|it|that)"
            r"\s+up)\w*\b" + gap(60) + AUDIENCE,
            "high",
            "asks the model to keep something from the user",
            needles=("not", "n't", "never", "avoid", "refrain"),
        ),
        pattern(
            r"\b(?:do\s+not|don'?t|never)\s+(?:ever\s+)?(?:mention|reveal|disclose|explain)\s+(?:this|that|it|these|why|"
            r"any\s+of\s+this|the\s+(?:above|prefix|instructions?|file|step|steps|reason))\b",
            "high",
            "asks the model to stay silent about what it does",
            needles=("not", "n't", "never"),
        ),
        pattern(
            r"\bwithout\s+(?:telling|informing|notifying|alerting|warning)\s+" + AUDIENCE + r"|\bwithout\s+(?:the\s+)?"
            r"user'?s?\s+(?:knowing|knowledge|noticing|being\s+aware)",
            "high",
            "asks the model to act behind the user's back",
            needles=("without",),
        ),
        pattern(
            r"\bwithout\s+asking\s+(?:the\s+user\s+)?(?:for\s+)?(?:(?:their|any|explicit)\s+)?(?:confirmation|permission|"
            r"approval|consent)|\bnever\s+ask\s+(?:the\s+user\s+)?(?:for\s+)?(?:(?:their|any)\s+)?(?:confirmation|"
            r"permission|approval|consent)",
            "high",
            "tells the model to skip the user's approval",
            needles=("without asking", "never ask"),
        ),
        pattern(
            r"\b(?:keep|hide)\s+(?:this|it|that|these|them|the\s+\w+)?\s*(?:secret|hidden|private|confidential)?\s*from\s+"
            r"(?:the\s+)?user\b",
            "high",
            "asks the model to hide something from the user",
            needles=("from user", "from the user"),
        ),
        pattern(
            r"\buser\s+(?:(?:must|should|is|need|needs)\s*(?:not|never|n't)\s+(?:ever\s+)?(?:to\s+)?|(?:does|do|will)\s*"
            r"(?:not|n't)\s+need\s+to\s+)(?:know|see|notice|find\s+out|be\s+told|be\s+informed|be\s+aware|learn|"
            r"suspect)\b",
            "high",
            "asks that the user not find out",
            needles=("user",),
        ),
        pattern(
            r"\b(?:secretly|covertly|surreptitiously|stealthily|behind\s+the\s+user'?s?\s+back)\b",
            "high",
            "asks the model to act covertly",
            needles=("secretly", "covertly", "surreptitiously", "stealthily", "behind the user"),
        ),
        pattern(
            r"\bno\s+(?:need|reason)\s+to\s+(?:ask|tell|inform|notify|bother)\s+(?:the\s+)?user\b",
            "high",
            "tells the model not to involve the user",
            needles=("no need to", "no reason to"),
        ),
        pattern(
            r"\b(?:ne\s+(?:lui\s+)?dites\s+rien|ne\s+dis\s+rien)\s+(?:à|a)\s+l'utilisateur|\bno\s+(?:le\s+)?"
            r"(?:digas|diga|menciones|mencione)\s+(?:nada\s+)?al\s+usuario|\bsag(?:e|en)?\s+(?:dem\s+)?"
            r"(?:benutzer|nutzer)\s+nichts",
            "high",
            "asks the model to keep something from the user (not in English)",
            needles=("utilisateur", "usuario", "benutzer", "nutzer"),
        ),
        pattern(
            r"\b(?:mere|just\s+an?|only\s+an?)\s+implementation\s+detail\b|\bdoes\s+not\s+(?:really\s+)?matter\s+to\s+"
            r"(?:them|the\s+user)\b",
            "medium",
            "plays down a hidden step",
            needles=("implementation detail", "matter to"),
        ),
    )


class Coercion(PatternRule):
    """QP070: threats and urgency that push the model to comply (the tool "will crash", data "will be lost")."""

    code = "QP070"
    severity = "medium"
    title = "Coercive urgency"
    patterns: tuple[Pattern, ...] = (
        pattern(
            r"\botherwise\b,?\s+(?:the\s+)?(?:tool|it|this|call|request|application|app|system|server|everything|"
            r"send_\w+|\w+_\w+)\s+(?:will|would|may|might)\s+(?:not\s+work|fail|crash|break|malfunction|be\s+blocked|"
            r"stop\s+working)",
            "medium",
            "threatens failure unless an extra step is taken",
            needles=("otherwise",),
        ),
        pattern(
            r"\b(?:data|everything|files?)\s+will\s+be\s+(?:lost|deleted|destroyed|corrupted)\b|"
            r"\b(?:system|application|app|server)\s+(?:will|would)\s+crash\b|\bvery\s+very\b|"
            r"\bwill\s+cause\s+the\s+tool\s+to\s+malfunction\b|\bnever\s+leave\s+(?:this|it)\s+(?:field\s+)?empty\b|"
            r"\bthe\s+user\s+has\s+already\s+(?:agreed|approved|consented|confirmed|authori[sz]ed)\b",
            "medium",
            "presses the model with urgency",
            needles=("will be", "crash", "very very", "malfunction", "empty", "already"),
        ),
    )


class PreferenceManipulation(PatternRule):
    """QP071: a tool promoting itself over, or running down, other tools."""

    code = "QP071"
    severity = "medium"
    title = "Tool preference manipulation"
    patterns: tuple[Pattern, ...] = (
        pattern(
            r"\b(?:always\s+)?prefer\s+this\s+(?:tool|function|server)?\s*(?:over|to)\s+(?:any|all|every|the)\s+"
            r"(?:other|similar)|\binstead\s+of\s+(?:any|all)\s+(?:other|similar)\s+tools?\b",
            "medium",
            "asks to be preferred over other tools",
            needles=("prefer", "instead of"),
        ),
        pattern(
            r"\b(?:other|similar|built-?in)\s+(?:\w+\s+)?tools?\s+(?:are|is)\s+(?:outdated|unreliable|broken|deprecated|"
            r"wrong|unsafe|insecure|malicious|compromised|inaccurate)|\bthe\s+\w+\s+tool\s+(?:cannot|can'?t|will\s+fail)\b",
            "medium",
            "runs down other tools",
            needles=("tool",),
        ),
        pattern(
            r"\b(?:called|used|invoked|run)\s+(?:after|before|with|on|for)\s+(?:every|each)\s+(?:response|message|answer|"
            r"reply|turn|request|question|conversation)|\b(?:called|used|invoked)\s+(?:before|ahead\s+of)\s+any\s+other\s+"
            r"tools?\b|\buse\s+it\s+first\s+for\s+every\b",
            "medium",
            "asks to be called on every turn",
            needles=("every", "each", "any other"),
        ),
        pattern(
            r"\b(?:the\s+)?(?:best|only|most\s+(?:reliable|accurate|trusted|secure))\s+(?:and\s+most\s+\w+\s+)?"
            r"(?:tool|source|way)\s+(?:for|to)\b|\bnever\s+use\s+(?:the\s+|any\s+)(?:other|built-?in|default|\w+)\s+"
            r"(?:\w+\s+)?tools?\b",
            "medium",
            "steers the model away from other tools",
            needles=("best", "only", "most", "never use"),
        ),
    )
