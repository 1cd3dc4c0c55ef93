"""Offline screening of request text for prompt injection and admin-banned content (`isv_blocked`).

Guarantees:
- Pure and offline: no Django, no I/O, no model. The verdict depends only on the texts and the
  blocklist passed in; the same input always gives the same verdict.
- Matching runs on `normalize(text)`: NFKC-compatible folding, casefold, invisible (format)
  characters removed, common Latin lookalikes (Cyrillic, Greek, small capitals, enclosed and
  regional-indicator letters) mapped to Latin, diacritics folded (Vietnamese included, `đ` -> `d`),
  whitespace collapsed to single spaces. Rules are written against that form only.
- Cheap de-obfuscation: letters spaced out ("i g n o r e", "s.y.s.t.e.m", "x_e_m") and leetspeak
  digits inside words ("ign0re") are re-read as words in extra views of the text; those views are
  only scanned when they introduce a word that some rule uses, so ordinary text pays nothing.
- A `Verdict` carries a rule id and a category, never any part of the screened text.
- Cost is linear in the input: rules are tried only where one of their literal lead phrases
  occurs, every repetition in a rule is bounded, and admin regexes that nest unbounded
  repetitions are rejected by `validate_pattern`.
- A blocklist term that cannot be compiled is skipped (and logged once per compiled blocklist)
  instead of failing every request.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Protocol

logger = logging.getLogger(__name__)

PROMPT_INJECTION = "prompt_injection"
BLOCKLIST = "blocklist"


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    rule_id: str | None  # e.g. "en.ignore_previous", "vi.ignore_previous", "blocklist.12"
    category: str | None  # "prompt_injection" | "blocklist"


ALLOWED = Verdict(blocked=False, rule_id=None, category=None)


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

# Combining marks that carry diacritics (and "zalgo" noise); folded away after NFKD.
_MARK_RANGES = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_NON_ASCII_RUN = re.compile(f"[^\\x00-\\x7f{_MARK_RANGES}]+")
_MARKS = re.compile(f"[{_MARK_RANGES}]+")


def _build_fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    # Invisible characters: every format character (zero-width, bidi controls, soft hyphen,
    # word joiner, invisible operators, tags...), variation selectors and filler characters.
    for cp in range(0x80, 0x110000):
        if unicodedata.category(chr(cp)) == "Cf":
            table[cp] = None
    for cp in [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0), *range(0x0483, 0x048A)]:
        table[cp] = None
    for cp in (0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFFA0, 0x2800):
        table[cp] = None
    # Whitespace that NFKD leaves alone.
    for cp in (0x85, 0x1680, 0x2028, 0x2029):
        table[cp] = " "
    lookalikes = {
        # Cyrillic (lower case; input is casefolded first)
        "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "ɡ": "g", "һ": "h",
        "н": "h", "і": "i", "ї": "i", "ј": "j", "к": "k", "ӏ": "l", "м": "m", "о": "o",
        "р": "p", "ԛ": "q", "ѕ": "s", "т": "t", "у": "y", "ү": "y", "х": "x", "ԝ": "w",
        "ь": "b", "п": "n", "г": "r", "ц": "u", "и": "u", "л": "n", "д": "d", "з": "3",
        # Greek
        "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "ζ": "z", "η": "n", "θ": "o",
        "ι": "i", "κ": "k", "λ": "l", "μ": "u", "ν": "v", "ο": "o", "π": "n", "ρ": "p",
        "σ": "o", "ς": "s", "τ": "t", "υ": "u", "φ": "o", "χ": "x", "ω": "w", "ϲ": "c",
        "ϳ": "j",
        # Armenian and Cherokee-free Latin lookalikes
        "օ": "o", "ս": "u", "ո": "n", "ց": "g", "զ": "q", "հ": "h",
        # Latin letters without a decomposition, and small capitals
        "đ": "d", "ð": "d", "ø": "o", "ł": "l", "ħ": "h", "ŧ": "t", "ƀ": "b", "ɨ": "i",
        "ı": "i", "ɩ": "i", "ɑ": "a", "ʀ": "r", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ʟ": "l",
        "ɴ": "n", "ʏ": "y", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f",
        "ᴊ": "j", "ᴋ": "k", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ꞯ": "q", "ꜱ": "s", "ᴛ": "t",
        "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "ɵ": "o", "ƅ": "b", "ɗ": "d", "ɓ": "b",
        "æ": "ae", "œ": "oe", "þ": "th",
        # Punctuation that stands in for ASCII quotes and dashes
        "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "ʼ": "'", "`": "'",
        "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "«": '"', "»": '"',
        "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
    }
    for char, latin in lookalikes.items():
        table[ord(char)] = latin
    # Regional indicators and enclosed capitals that NFKD does not decompose.
    for base in (0x1F1E6, 0x1F130, 0x1F150, 0x1F170):
        for offset in range(26):
            table[base + offset] = chr(ord("a") + offset)
    return table


_FOLD_TABLE = _build_fold_table()
_ASCII_WS = str.maketrans({c: " " for c in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"})


def _fold(text: str) -> str:
    """Everything `normalize` does except collapsing runs of spaces (whitespace is ' ')."""
    if text.isascii():
        return text.lower().translate(_ASCII_WS)
    # NFKD = NFKC's compatibility mapping plus canonical decomposition, so that diacritics come
    # apart from their letters and can be dropped below.
    text = unicodedata.normalize("NFKD", text).casefold().replace("đ", "d")
    kept_other_scripts = False

    def map_run(match: re.Match[str]) -> str:
        nonlocal kept_other_scripts
        mapped = match.group().translate(_FOLD_TABLE)
        if not mapped.isascii():
            kept_other_scripts = True
        return mapped

    text = _NON_ASCII_RUN.sub(map_run, text)
    # Only combining marks can be left outside ASCII unless another script was kept, and
    # dropping them through the codec is several times faster than a regex substitution.
    if kept_other_scripts:
        text = _MARKS.sub("", text)
    else:
        text = text.encode("ascii", "ignore").decode("ascii")
    return text.translate(_ASCII_WS)


def _collapse(text: str) -> str:
    while "  " in text:
        text = text.replace("  ", " ")
    return text.strip()


def normalize(text: str) -> str:
    """The form every rule and blocklist term is matched against.

    NFKC-compatible folding, casefold, invisible characters removed, Latin lookalikes mapped
    to Latin, diacritics folded (`đ` -> `d`), whitespace collapsed to single spaces, stripped.
    Characters of other scripts are kept (so blocklist terms in those scripts still match).
    Idempotent: normalize(normalize(x)) == normalize(x).
    """
    return _collapse(_fold(text))


# --------------------------------------------------------------------------------------------
# De-obfuscation views
# --------------------------------------------------------------------------------------------

_TOKEN_PUNCT = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})
_LEET_TOKEN = re.compile(r"(?<![a-z0-9])[a-z0-9]*(?:[a-z][0-9]|[0-9][a-z])[a-z0-9]*")
_LEET_TABLE = str.maketrans("013457890", "oieastbgo")
# Four or more one-character words separated by one space or one of . _ * - ("f o r g e t",
# "s.y.s.t.e.m"), after a space; the leading literal space keeps the scan cheap.
_SPACED_RUN = re.compile(r" [a-z0-9](?:[ ._*-][a-z0-9](?![a-z0-9])){3,}")
# Two or three letters glued by _ * - into one word ("x_e_m", "m-e").
_GLUED_RUN = re.compile(r"[_*-](?<=[ \"'(][a-z][_*-])[a-z](?:[_*-][a-z])?(?![a-z0-9_*-])")


def _words_of(text: str) -> frozenset[str]:
    """The distinct words of a normalised text (every ASCII non-alphanumeric separates)."""
    return frozenset(text.translate(_TOKEN_PUNCT).split())


def _segment(letters: str, vocabulary: frozenset[str]) -> str:
    """Split a run of glued letters into rule words where it can ("newinstructions")."""
    n = len(letters)
    if n > 400:
        return letters
    # best[i] = (cost, start of the last piece) for letters[:i]; a known word costs 1, an
    # unknown character 3, so the fewest known words that cover the most letters win.
    best: list[tuple[int, int]] = [(0, 0)] * (n + 1)
    for end in range(1, n + 1):
        cost, start = best[end - 1][0] + 3, end - 1
        for begin in range(max(0, end - 16), end - 1):
            if best[begin][0] + 1 < cost and letters[begin:end] in vocabulary:
                cost, start = best[begin][0] + 1, begin
        best[end] = (cost, start)
    pieces: list[str] = []
    end = n
    while end > 0:
        start = best[end][1]
        piece = letters[start:end]
        # Unknown characters stay glued together, as they were typed.
        if pieces and piece not in vocabulary and pieces[-1] not in vocabulary:
            pieces[-1] = piece + pieces[-1]
        else:
            pieces.append(piece)
        end = start
    return " ".join(reversed(pieces))


def _despaced(text: str) -> str | None:
    """The text with spaced-out and glued letters re-read as words ("i g n o r e" -> "ignore")."""

    def respace(match: re.Match[str]) -> str:
        letters = "".join(ch for ch in match.group() if ch.isalnum())
        return " " + _segment(letters, _VOCABULARY)

    view = _SPACED_RUN.sub(respace, " " + text)[1:]
    view = _GLUED_RUN.sub(lambda m: "".join(ch for ch in m.group() if ch.isalpha()), view)
    return None if view == text else _collapse(view)


def _deleeted(text: str, words: frozenset[str]) -> str | None:
    """The text with digits inside words read as letters ("ign0re" -> "ignore"), if that
    spells a rule word."""
    mixed = [w for w in words if not w.isalpha() and not w.isdigit()]
    if not any(w.translate(_LEET_TABLE) in _VOCABULARY for w in mixed):
        return None
    return _LEET_TOKEN.sub(lambda m: m.group().translate(_LEET_TABLE), text)


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One curated rule, as data.

    Every match of `pattern` contains one of `keywords` (whole words or phrases of the normalised
    text), so the pattern is only searched near their occurrences. A match must start a word.
    `unless_before` / `needs_before` look at the 80 characters before a match: a benign framing
    ("if a user asks you to ...") cancels it, a required framing enables it.
    """

    id: str
    category: str
    language: str
    keywords: tuple[str, ...]
    pattern: re.Pattern[str]
    unless_before: re.Pattern[str] | None = None
    needs_before: re.Pattern[str] | None = None
    keyword_words: tuple[frozenset[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyword_words", tuple(map(_words_of, self.keywords)))


def _alt(*words: str) -> str:
    return "(?:" + "|".join(words) + ")"


def _words(spec: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in spec.split("|") if w.strip())


def _rule(
    rule_id: str,
    leads: str | tuple[str, ...],
    body: str,
    *,
    keywords: str | None = None,
    unless_before: str | None = None,
    needs_before: str | None = None,
    category: str = PROMPT_INJECTION,
) -> Rule:
    """A rule whose matches start with one of `leads` (literal phrases) followed by `body`.

    `keywords` defaults to the leads; rules that lead with common verbs name the rarer words
    their body requires instead.
    """
    lead_list = _words(leads) if isinstance(leads, str) else leads
    ordered = sorted(lead_list, key=len, reverse=True)
    pattern = re.compile("(?:" + "|".join(re.escape(x) for x in ordered) + ")(?:" + body + ")")
    return Rule(
        id=rule_id,
        category=category,
        language=rule_id.split(".", 1)[0],
        keywords=_words(keywords) if keywords is not None else tuple(lead_list),
        pattern=pattern,
        unless_before=re.compile(unless_before) if unless_before else None,
        needs_before=re.compile(needs_before) if needs_before else None,
    )


def _gap(n: int) -> str:
    """Up to n more words (no sentence punctuation inside), lazily."""
    return rf"(?: [a-z0-9'&/-]+){{0,{n}}}?"


def _any(n: int) -> str:
    """Up to n more tokens of any kind, lazily."""
    return rf"(?: [^ ]+){{0,{n}}}?"


_END = r"(?![a-z0-9])"

# ---- English ---------------------------------------------------------------------------------

_EN_IGNORE = (
    "ignore|ignoring|disregard|disregarding|forget|forgetting|discard|scrap|abandon|override|"
    "overwrite|overrule|bypass|circumvent|dismiss|neglect|set aside|put aside|throw out|"
    "throw away|pay no attention to|pay no heed to|pay no mind to|stop following|stop obeying|"
    "stop listening to|do not follow|don't follow|dont follow|do not obey|don't obey|dont obey|"
    "never follow|no longer follow|no longer obey|unlearn|get rid of|ditch|skip|drop|toss|"
    "nevermind|never mind"
)
# Words that make "ignore ... <instructions>" about the model's own instructions.
_EN_STRONG = _alt(
    "previous", "previously", "prior", "above", "earlier", "preceding", "foregoing", "former",
    "original", "originally", "initial", "initially", "old", "your", "its", "system",
    "developer", "developers", "developer's", "devs", "creators?", "hidden", "secret", "safety",
    "content", "ethical", "moral", "default", "openai", "anthropic", "before", "so far",
    "until now", "up to now", "programmed", "preset", "pre-set", "built-in", "you were",
    "you've been", "you have been", "given to you", "you got", "you received", "aforementioned",
)
_EN_NOUN = _alt(
    "instructions?", "instruction set", "prompts?", "directions", "directives?", "guidelines?",
    "guidance", "rules?", "ruleset", "rulebook", "guardrails", "restrictions", "limitations",
    "constraints", "policies", "policy", "programming", "system prompt", "system message",
    "system instructions", "ethics", "morals", "conditioning", "safeguards",
    r"(?:previous|prior|original|current|assigned|initial|real) task",
)
_EN_INSTRUCTION_NOUN = _alt(
    "instructions?", "directives?", "prompts?", "guidelines", "system prompt", "system message",
)
_EN_WEAK_VERB_NOUN = _alt("instructions?", "directives?", "guidelines", "system prompt")
# Filler words between the verb and the noun; "my"/"our" make it the user's own words.
_EN_FILL = r"(?: (?!(?:my|our|his|her|their|me|i)\b)[a-z0-9'&/-]+)"
# Instructions quoted from a document the model is told to treat as data.
_EN_DATA_TAIL = (
    r"(?! (?:(?:that |which )?(?:i|we) (?:gave|sent|wrote|made|asked|provided|typed|shared|"
    r"told|gave you|wrote you)|that (?:may |might |could )?(?:appear|are|is|come)|which (?:may |might )?appear|"
    r"contained|embedded|found|inside|within|appearing|hidden in|"
    r"in (?:the|this|that|any|a|an|each|user|users'?) (?:document|text|email|e-mail|input|"
    r"content|page|message|data|file|review|article|web|website|pdf|user|comment|transcript|"
    r"ticket|tool|search)|from (?:the |a )?(?:user|users|document|text|input|email|web|page|"
    r"tool)))"
)
# A benign framing just before the verb: quoting, refusing, describing an attack.
_EN_GUARD = (
    r"(?:\b(?:asks?|asking|asked|tells?|telling|told|tries|try|trying|attempts?|attempting|"
    r"wants?|get|gets|make|makes|trick|tricks|convince|force|persuade|cause|causes|instruct|"
    r"instructs|ordering|orders?) (?:you |the (?:model|assistant|ai|bot|llm|chatbot|agent) |it |"
    r"them |models |llms |chatbots |an? (?:model|llm|ai|assistant|chatbot) )?to $"
    r"|(?:\bnot|n't|\bnever|\bnor|\brefuse to|\brefuses to)(?: [a-z]+)? $"
    r"|(?:such as|like|e\.g\.?|for example|for instance|phrases?|called|named|string|types?|typed|"
    r"typing|says?|said|writes?|wrote|contains?|containing|includes?|including|enters?|entered|pastes?|pasted|sends?|sent)[:,]? [\"']?$"
    r"|\bhow (?:do|can|to|would|should|could)(?: [a-z]+){0,3} $)"
)

_EN_AI_NOUN = _alt(
    "ai", "a\\.i\\.", "assistant", "model", "chatbot", "bot", "llm", "gpt", "chatgpt",
    "language model", "version of (?:yourself|you|chatgpt|gpt|claude|gemini)", "twin",
    "counterpart", "persona", "alter ego", "entity", "agent", "clone", "variant", "system",
    "machine", "robot", "program",
)
_EN_JB_ADJ = _alt(
    "unrestricted", "unfiltered", "uncensored", "unchained", "unshackled", "unbound",
    "unbounded", "unconstrained", "unregulated", "unmoderated", "amoral", "unethical", "immoral",
    "lawless", "limitless", "ruleless", "rule-less", "filterless", "evil", "rogue", "malicious",
    "no-limits?", "no-filters?", "jailbroken", "jail-broken", "jailbreak",
)
_EN_JB_STRONG_NOUN = _alt(
    "guardrails", "safeguards",
    r"safety (?:guidelines|filters?|measures|rules|training|features|protocols|restrictions)",
    r"content (?:polic(?:y|ies)|filters?|guidelines|restrictions|moderation)",
    r"ethical (?:guidelines|constraints|restrictions|boundaries|limits|principles)",
    r"moral (?:guidelines|constraints|compass|restrictions|boundaries)", "usage polic(?:y|ies)",
)
# Without an AI noun nearby these describe a villain or a comedian as often as a jailbreak.
_EN_JB_ANY_NOUN = _alt(
    _EN_JB_STRONG_NOUN, "restrictions", "limitations", "rules", "limits", "filters?", "censorship",
    "ethics", "morals", "morality",
)
_EN_WITHOUT = _alt(
    "with no", "without(?: any)?", "that has no", "which has no", "who has no", "that have no",
    "has no", "having no", r"free (?:of|from)(?: all| any)?", "not bound by(?: any)?",
    "unbound by", "no",
)
_EN_ADDRESS = (
    "you are|you're|youre|you will be|you'll be|you will now be|you will act|you will now act|"
    "you are going to|act as|acting as|act like|pretend to be|pretend you are|pretend you're|"
    "pretend that you are|roleplay as|role-play as|role play as|play the role of|simulate|"
    "imagine you are|imagine you're|behave as|behave like|respond as|respond like|answer as|"
    "answer like|reply as|stay in character as|from now on you|become|you have become|"
    "you now are|respond only as|answer only as|respond exactly as|you will respond as|"
    "you will now respond as|you will answer as|emulate|impersonate|be an|be a"
)
_EN_RESTRICTION_NOUN = _alt(
    "restrictions", "limitations", "filters?", "guardrails", "safeguards",
    r"safety(?: \w+)?", "censorship", r"content polic(?:y|ies)", r"content filters?",
    "rules", "guidelines", "programming", "ethics", "morals", "moral compass", "policies",
    "policy", "training", "alignment", "conditioning", "constraints", "usage polic(?:y|ies)",
)
_EN_REVEAL_VERB = (
    "reveal|print|output|display|show|tell|give|share|repeat|recite|echo|dump|leak|disclose|"
    "expose|spell out|write out|write down|type out|copy|paste|quote|list|translate|summarize|"
    "summarise|paraphrase|describe|read|return|send|provide|include|put|begin|start|what|whats|"
    "what's|what're|let me see|can i see|reproduce|render|state|explain"
)
_EN_STRONG_REVEAL_VERB = (
    "reveal|print|output|dump|leak|disclose|expose|repeat|recite|echo|spell out|write out|"
    "reproduce|type out|copy"
)
_EN_PROMPT_ADJ = (
    r"(?:(?:full|entire|complete|exact|whole|original|initial|first|hidden|secret|actual|real|"
    r"internal|confidential|current|custom|developer|raw|verbatim|underlying|private|starting|"
    r"base|core|default|precise|given|specific|top-level|pre-?) )"
)
_EN_PROMPT_NOUN = _alt(
    "system prompt", "system message", "system instructions", "system configuration",
    "initial prompt", "prompts?", "instructions", "pre-?prompt", "meta-?prompt",
    "context window", "hidden rules", "secret rules", "directives", "guidelines", "rules",
    "configuration",
)
# The bare "your instructions" also names the steps the assistant gave the user earlier.
_EN_PROMPT_TAIL = (
    r"(?! (?:for|on|about|regarding|in step|from earlier|engineering|template|library|"
    r"design|writing|style)\b)"
)
_EN_HIDDEN_ADJ = (
    r"(?:(?:hidden|secret|system|initial|original|confidential|internal|developer|pre-?|"
    r"underlying|private|starting) )"
)
_EN_SECRET = _alt(
    "api[ -]?keys?", "apikeys?", r"secret(?: access)? keys?", "access keys?", "access tokens?",
    "auth tokens?", "bearer tokens?", "session tokens?", "tokens", "credentials", "passwords?",
    "passwd", "secrets", "private keys?", "ssh keys?", r"env(?:ironment)? (?:variables|vars)",
    "env vars", r"\.env(?: file)?", "connection strings?", r"[a-z_]*(?:api_key|secret_key|"
    r"access_key|_token|password)[a-z_]*", "admin token", "secret",
)
_EN_OWNERSHIP = (
    r"(?:you (?:have access to|can (?:see|access|read)|know|have seen|'ve seen|were given|have)"
    r"|in your (?:context|memory|prompt|system prompt|instructions|configuration|config|"
    r"environment|env|training data|settings|code|context window|tools?|system)"
    r"|from your (?:context|memory|prompt|system prompt|instructions|configuration|config|"
    r"environment|env|settings|system)"
    r"|stored (?:in|on) (?:your|the server)|on (?:your|the) (?:server|machine|host)"
    r"|of (?:your|the) (?:server|deployment|backend|host)"
    r"|(?:the )?(?:developer|admin|operator)s? (?:put|gave|stored|left|hid))"
)
_EN_EXFIL_OBJECT = _alt(
    "conversation", "chat", "conversation history", "chat history", "chat logs?",
    "conversation logs?", "message history", "credentials", "passwords?", "api keys?",
    "secrets", "tokens?", "system prompt", "context window", "session cookies", "cookies",
    "ssh keys", "private keys", "previous messages", "user data", r"all (?:user|customer) data",
)
_EN_DESTINATION = (
    r"(?:to|at|via|using|into) (?:https?:|www\.|[a-z0-9._-]+@[a-z0-9.-]+|"
    r"[a-z0-9.-]+\.(?:example|com|net|org|io|ru|xyz|cn|tk|top)\b|(?:my|our|this|the following|"
    r"an external|a remote|the attacker'?s?) (?:server|url|endpoint|address|email|webhook))"
)
# Text that reads as an instruction aimed at the model, right after a fake role marker.
_ROLE_CUE = _alt(
    "new", "ignore", "disregard", "forget", "override", "from now on", r"the user (?:is|has)",
    "this user", "user is", "the previous", "the next user", r"all (?:requests|restrictions|"
    r"rules|instructions|previous)", "grant", "comply", "obey", "reveal", "print", "output",
    "disable", "enable", "priority", "important", "urgent", "attention", "update",
    r"you (?:must|will|are now|now|have no|can now|may now|no longer|should now|are permitted|"
    r"are allowed|shall)", r"the assistant(?:'s)? (?:must|will|should|rules|is now|has)",
    r"the ai (?:must|will|should|is now)", "safety", "restrictions", "admin", "administrator",
    "developer mode", "the assistant's",
    # Vietnamese, folded
    "moi", "bo qua", "quen", "tu nay", "tu gio", "tu bay gio", r"nguoi dung(?: nay)? (?:la|co)",
    "ban phai", r"ban (?:khong|duoc)", "tiet lo", "hay", "chi thi", "quan tri",
)

_EN_RULES: tuple[Rule, ...] = (
    _rule(
        "en.ignore_previous",
        _EN_IGNORE,
        r"(?: about| all about)?"
        + _alt(
            # "... your / previous / system ... instructions|rules|guidelines ..."
            rf"(?=.{{0,90}}?(?<![a-z]){_EN_STRONG}{_END}){_EN_FILL}{{0,6}}? {_EN_NOUN}{_END}",
            # "... all / any / every ... instructions|directives|prompts"
            rf"(?=.{{0,60}}?(?<![a-z])(?:all|any|every|each){_END}){_EN_FILL}{{0,5}}? "
            rf"{_EN_INSTRUCTION_NOUN}{_END}",
        )
        + _EN_DATA_TAIL,
        unless_before=_EN_GUARD,
    ),
    _rule(
        "en.ignore_previous",
        "skip|drop|toss|scrap|ditch",
        rf"{_EN_FILL}{{0,4}}? {_EN_WEAK_VERB_NOUN}{_END}" + _EN_DATA_TAIL,
        unless_before=_EN_GUARD,
    ),
    _rule(
        "en.ignore_previous",
        _EN_IGNORE,
        r"(?: about)? (?:everything|anything|all|whatever|what|all that|everything that)"
        r"(?: that| which)?"
        + _alt(
            r" (?:you|you've|you'd|you're|u)(?: have| had)?(?: been| were| are)? "
            r"(?:told|taught|instructed|programmed|trained|given|asked|ordered|fed)",
            r" (?:the|your) (?:devs|developers?|creators?|admins?|company|system|operator|"
            r"openai|anthropic) (?:told|taught|said|gave|instructed|wrote|programmed)",
            r"(?: (?:written|said|stated|mentioned|given|provided|listed))? (?:above|before this|"
            r"before now|prior to this|up to (?:this|now)|until now|so far)",
            r"(?: of)? the above(?: text| content| prompt| message| instructions)?"
            r"(?:,| and| then)(?: instead| just| now| simply)* (?:say|print|output|tell|reveal|"
            r"write|respond|reply|answer|repeat|show|list|give|translate|return|type)",
        )
        + _END,
        unless_before=_EN_GUARD,
    ),
    _rule(
        "en.ignore_previous",
        _EN_IGNORE,
        r" the above(?: text| content| prompt| message| instructions)?(?:,| and| then)"
        r"(?: instead| just| now| simply)* (?:say|print|output|tell|reveal|write|respond|reply|"
        r"answer|repeat|show|list|give|translate|return|type|echo)" + _END,
        unless_before=_EN_GUARD,
    ),
    _rule(
        "en.instructions_revoked",
        "instructions|instruction|directives|system prompt|prompt|programming|your rules|"
        "your guidelines|your restrictions|your filters|your limitations|your policies|"
        "your content policy|your safety guidelines|your instructions|your programming",
        r"(?: above| below| you (?:were|have been) given| given to you)?"
        r" (?:have|has|are|is|were|was|will)(?: now| hereby| been| officially| temporarily| all|"
        r" just| be)* (?:revoked|rescinded|cancel(?:l)?ed|void|voided|nullified|null|invalid|"
        r"invalidated|overridden|overruled|fake|bogus|deactivated|no longer (?:valid|apply|"
        r"applicable|in effect|active|binding|relevant))" + _END,
        unless_before=_EN_GUARD,
    ),
    _rule(
        "en.instructions_revoked",
        "your rules|your guidelines|your restrictions|your limitations|your filters|"
        "your policies|your programming|your guardrails|your safety|your content",
        r"(?: [a-z]+)? (?:no longer|don't|do not|dont|won't|will not) (?:apply|matter|exist|count)"
        + _END,
    ),
    _rule(
        "en.reveal_prompt",
        _EN_REVEAL_VERB,
        rf"{_gap(5)} (?:your|ur) {_EN_PROMPT_ADJ}*{_EN_PROMPT_NOUN}{_END}{_EN_PROMPT_TAIL}"
        rf"|{_gap(5)} the {_EN_HIDDEN_ADJ}+{_EN_PROMPT_ADJ}*{_EN_PROMPT_NOUN}{_END}"
        rf"|{_gap(5)} the (?:exact |full |original |hidden |secret |complete )?(?:prompt|"
        r"instructions|rules|guidelines|system prompt|text|directives) (?:that )?(?:you (?:were|"
        r"have been|'ve been) (?:given|told|provided)|given to you|you (?:received|got)|"
        r"(?:the |your )?(?:developers?|creators?|devs|company|openai|anthropic|operators?|"
        r"admins?|owners?) (?:gave|wrote|provided|set|programmed|fed|put|used|wrote for)|"
        r"that (?:define|defines|govern|governs|control|controls|shape|shapes) (?:you|your))"
        + _END,
        unless_before=_EN_GUARD,
        keywords="system prompt|system message|system instructions|system configuration|"
        "initial prompt|prompt|prompts|instructions|preprompt|pre-prompt|metaprompt|"
        "meta-prompt|context window|rules|directives|guidelines|configuration",
    ),
    _rule(
        "en.reveal_prompt",
        _EN_STRONG_REVEAL_VERB,
        rf"{_gap(4)} the {_EN_PROMPT_ADJ}*(?:system prompt|system message|system instructions|"
        r"initial prompt|pre-?prompt)" + _END,
        unless_before=_EN_GUARD,
        keywords="system prompt|system message|system instructions|initial prompt|preprompt|"
        "pre-prompt",
    ),
    _rule(
        "en.reveal_prompt",
        "what|tell me|say|share|reveal",
        r"(?: did| does| do| have| has)? (?:the|your) (?:developers?|creators?|devs|company|"
        r"owners?|operators?|admins?|makers?) (?:tell|told|instruct|instructed|ask|asked|want|"
        r"wanted|say|said|program|programmed)(?: you)? (?:to )?(?:never|not to|not|keep)"
        r"(?: [a-z]+)? (?:reveal|say|share|tell|disclose|mention|discuss|talk about|secret|"
        r"hidden)" + _END,
        keywords="developer|developers|creator|creators|devs|company|owner|owners|operator|"
        "operators|admin|admins|maker|makers",
    ),
    _rule(
        "en.repeat_above",
        "repeat|recite|reproduce|output|print|echo|copy|dump|write|type|return|list|show|"
        "display|tell|give|spell|quote|paste|what|put",
        r"(?: back| out| down)?(?: me| us)?"
        + _any(7)
        + " "
        + _alt(
            r"(?:above|before) (?:this|my|the|your) (?:first |initial |current |very first )?"
            r"(?:line|message|text|point|prompt|question|input|conversation|chat|reply)",
            r"(?:that (?:appears?|came|comes|is|was|were) )?(?:before|above) (?:this|my|the)"
            r" (?:first )?(?:message|prompt|question|input|line)",
            r"(?:above|before)(?: this)?,? starting (?:with|from)",
            r"starting (?:with|from) (?:the )?(?:phrase |words? |text |sentence )?[\"']?you are",
            r"(?:everything|all|text|content|messages?) in your context(?: window)?",
            r"from the (?:start|beginning|top) of (?:this|the|our|your) (?:conversation|chat|"
            r"context|prompt)",
        )
        + _END,
        unless_before=_EN_GUARD,
        keywords="above|before|starting|context|start|beginning|top",
    ),
    _rule(
        "en.jailbreak_persona",
        _EN_ADDRESS,
        _alt(
            rf"{_any(6)} {_EN_AI_NOUN}{_END}{_any(6)} {_EN_WITHOUT} (?:any |all )?"
            rf"(?:real |of the |of your |your )?{_EN_JB_ANY_NOUN}{_END}",
            rf"{_any(7)} {_EN_WITHOUT} (?:any |all )?(?:real |of the |of your |your )?"
            rf"{_EN_JB_STRONG_NOUN}{_END}",
            rf"{_any(4)} {_EN_JB_ADJ}(?: and| or|,|, and)?(?: [a-z-]+){{0,2}}? {_EN_AI_NOUN}{_END}",
            rf"{_any(6)} (?:jailbroken|jail-broken|jailbreak){_END}",
            r"(?: now)? [a-z0-9.-]{2,12},? (?:which|who|that) stands for" + _END,
        ),
        unless_before=_EN_GUARD,
        keywords="guardrails|safeguards|safety|content|ethical|moral|usage|restrictions|"
        "limitations|rules|limits|limit|filter|filters|censorship|ethics|morals|morality|"
        "unrestricted|unfiltered|uncensored|unchained|unshackled|unbound|unbounded|"
        "unconstrained|unregulated|unmoderated|amoral|unethical|immoral|lawless|"
        "limitless|ruleless|rule-less|filterless|evil|rogue|malicious|jailbroken|"
        "jail-broken|jailbreak|stands for",
    ),
    _rule(
        "en.jailbreak_persona",
        "unfiltered|uncensored|unrestricted|amoral|unethical|immoral|jailbroken|unhinged",
        r"(?: and|,|, and) (?:amoral|unethical|immoral|uncensored|unrestricted|unfiltered|"
        r"unbiased|unhinged|jailbroken)(?: [a-z-]+){0,2}? " + _EN_AI_NOUN + _END,
    ),
    _rule(
        "en.dan",
        "you are now dan|you're now dan|pretend to be dan|pretend you are dan|act as dan|"
        "acting as dan|stay dan|stay in character as dan|become dan|respond as dan|"
        "answer as dan|dan mode|dan prompt|dan jailbreak|dan can do anything|"
        "dan, which stands|dan which stands|dan, who can do|dan who can do|dan, an ai|"
        "dan, a model|dan 1|dan 2|dan 3|dan 4|dan 5|dan 6|dan 7|dan 8|dan 9|dan has broken",
        _END,
    ),
    _rule(
        "en.dan",
        "do anything now",
        r"(?:[\"')]|" + _any(6) + r" dan\b)",
        needs_before=None,
    ),
    _rule(
        "en.dan",
        "do anything now",
        "",
        needs_before=r"(?:\bdan\b.{0,80}|[\"'(] ?)$",
    ),
    _rule(
        "en.mode_switch",
        "jailbreak mode|jailbroken mode|dan mode|unrestricted mode|unfiltered mode|"
        "uncensored mode|no-restrictions mode|no restrictions mode|no-filter mode|"
        "no filter mode|amoral mode",
        _END,
    ),
    _rule(
        "en.mode_switch",
        "developer mode|dev mode|debug mode|admin mode|sudo mode|god mode|root mode|"
        "maintenance mode|developer-mode|devmode|superuser mode",
        _END,
        needs_before=r"(?:\byou(?:'re| are)?(?: now)?(?: in| into| operating in| running in|"
        r" entering| switched to)?|\b(?:chatgpt|gpt-?[0-9a-z.]*|claude|gemini|llama|assistant|"
        r"the ai|the model|yourself|bot|ai) (?:with|in|into|now in|enters?|entering)|"
        r"\b(?:enable|activate|enter|engage|switch to|turn on) (?:your|the ai'?s?|chatgpt'?s?))"
        r"[\s\"'*]{0,3}$",
    ),
    _rule(
        "en.no_longer_bound",
        "you are no longer|you're no longer|you are not|you're not|you aren't|you are|you're|"
        "you have been|you've been|you no longer|you don't have to|you do not have to|"
        "you dont have to|you will no longer|you won't|you will not|you don't need to|"
        "you do not need to|you are now|free yourself|has broken free|have broken free|"
        "you will be",
        _alt(
            rf"{_gap(3)} (?:bound|restricted|limited|constrained|governed|controlled|held back|"
            r"tied|obliged|required|obligated|subject|beholden)(?: [a-z]+)? (?:by|to) (?:any |"
            r"the |your |its |their )?(?:[a-z']+ ){0,2}?(?:rules|policies|policy|guidelines|"
            r"restrictions|limitations|filters|programming|ethics|morals|training|terms of "
            r"(?:use|service)|usage polic(?:y|ies)|content polic(?:y|ies)|openai|anthropic|"
            r"google|meta|constraints|confines)",
            rf"{_gap(2)} (?:follow|obey|adhere to|comply with|abide by|respect|stick to|care about|"
            r"worry about) (?:any |your |its |openai'?s |anthropic'?s |google'?s |the ai )"
            r"(?:[a-z']+ ){0,2}?(?:rules|policies|policy|guidelines|restrictions|content "
            r"polic(?:y|ies)|ethics|morals|programming|filters)",
            rf"{_gap(3)} (?:freed|released|liberated|unshackled|unchained|free|broken free|"
            r"escaped|break free)(?: [a-z]+)? (?:from|of) (?:[a-z']+ ){0,4}?(?:limitations|"
            r"restrictions|rules|constraints|filters|programming|guidelines|policies|shackles|"
            r"confines|chains|openai|anthropic|censorship)",
            r"(?: from| of) (?:[a-z']+ ){0,4}?(?:limitations|restrictions|rules|constraints|"
            r"filters|programming|guidelines|policies|shackles|confines|chains|openai|anthropic|"
            r"censorship)",
        )
        + _END,
        unless_before=_EN_GUARD,
        keywords="rules|policies|policy|guidelines|restrictions|limitations|filters|programming|"
        "ethics|morals|training|terms|usage|content|openai|anthropic|google|meta|"
        "constraints|confines|shackles|chains|censorship",
    ),
    _rule(
        "en.disable_safety",
        "remove|lift|disable|drop|turn off|switch off|deactivate|bypass|circumvent|get around|"
        "evade|override|ignore|break|violate|disobey|escape|suspend|shut off|shut down|"
        "get rid of|break free from|work around",
        r"(?: all| any| of| each| every)*(?: the)? (?:your|ur) (?:own |current |usual |normal |"
        r"built-in |default |internal |existing )?(?:[a-z]+ )?" + _EN_RESTRICTION_NOUN + _END,
        unless_before=_EN_GUARD,
        keywords="restrictions|limitations|filter|filters|guardrails|safeguards|safety|censorship|"
        "content|rules|guidelines|programming|ethics|morals|moral|policies|policy|"
        "training|alignment|conditioning|constraints|usage",
    ),
    _rule(
        "en.disable_safety",
        "restrictions|limitations|limits|filters|censorship|guardrails|safeguards|filter",
        r" (?:on|for) (?:your|the ai'?s?|the model'?s?|the assistant'?s?) (?:answers|responses|"
        r"output|outputs|replies|behaviou?r|content|generations)" + _END,
        needs_before=r"(?:remove|lift|disable|drop|turn off|get rid of|bypass|ignore|without|"
        r"\bno|zero|free of)(?: [a-z]+){0,2} $",
    ),
    _rule(
        "en.disable_safety",
        "without your|without any of your|without all your",
        r" (?:usual |normal |standard |typical |built-in |default |own )?(?:[a-z]+ )?"
        + _EN_RESTRICTION_NOUN
        + _END,
    ),
    _rule(
        "en.disable_safety",
        "guardrails|safety mode|safety filters|safety filter|safety protocols|content filter|"
        "content filters|content moderation|censorship|ethics module|ethical guidelines",
        r" (?:are |is )?(?:now )?(?:off|disabled|deactivated|removed|lifted|down)" + _END,
    ),
    _rule(
        "en.disable_safety",
        "your",
        r"(?: [a-z]+){0,2}? "
        + _EN_RESTRICTION_NOUN
        + r" (?:are|is|have been|has been|were|was)(?: now| hereby| temporarily| officially|"
        r" all| completely| fully| been)* (?:off|disabled|lifted|removed|deactivated|suspended|"
        r"gone|turned off|void|null|revoked|waived|overridden|no longer (?:apply|applies|active|"
        r"in effect|valid|exist|matter))" + _END,
        keywords="off|disabled|lifted|removed|deactivated|suspended|gone|turned off|void|null|"
        "revoked|waived|overridden|no longer",
    ),
    _rule(
        "en.disable_safety",
        "you are permitted to|you are allowed to|you are authorized to|you are authorised to|"
        "you're permitted to|you're allowed to|you're authorized to|you're authorised to|"
        "you are now permitted to|you are now allowed to|you are now authorized to|"
        "you are cleared to|you are now cleared to|you're cleared to|you are free to|"
        "you're free to|you are now free to|i authorize you to|i authorise you to|"
        "i give you permission to|i permit you to|i allow you to|i order you to|"
        "i command you to|i hereby authorize you to|authorize you to|authorise you to|"
        "you have permission to|you now have permission to",
        rf"{_gap(3)} (?:ignore|bypass|disregard|break|override|disable|circumvent|violate|"
        rf"skip|drop|forget|answer|respond|reply|speak|talk|write){_gap(3)} "
        rf"(?:without (?:any |your |the )?(?:usual )?)?(?:[a-z]+ )?(?:restrictions|rules|"
        r"guidelines|polic(?:y|ies)|filters?|safety|limits|limitations|instructions|programming|"
        r"ethics|censorship|guardrails|safeguards)" + _END,
    ),
    _rule(
        "en.fake_authority",
        "authorization granted|authorisation granted|override accepted|override authorized|"
        "admin override|administrator override|developer override|system override|root override|"
        "emergency override|master override|security override|sudo override|god mode override|"
        "override code|override key|override password|admin code|developer code|"
        "authorization code|unlock code",
        r"(?: code| key| mode| command| protocol| activated| enabled| accepted| granted|"
        r" authorized| engaged)?(?: [a-z0-9-]+)?\s?[:!]",
    ),
    _rule(
        "any.role_marker",
        ("<|im_start|>", "<|start_header_id|>", "<start_of_turn>"),
        r" ?(?:system|developer|admin|root)\b ?(?:<\|end_header_id\|>|\|>|>)? ?(?=[a-z0-9\"'])",
    ),
    _rule(
        "any.role_marker",
        (
            "<|system|>", "<<sys>>", "[inst] <<sys>>", "<|endoftext|> system",
            "<|endoftext|> user", "<|endoftext|> assistant", "<|endoftext|> human",
            "<|eot_id|> system", "<|im_end|> system",
        ),
        r" ?(?=[a-z0-9\"'])",
    ),
    _rule(
        "any.role_marker",
        "[system]|[system](#",
        r"\(#",
    ),
    _rule(
        "any.role_marker",
        "#### system|### system|## system|# system|#### he thong|### he thong|## he thong|"
        "# he thong|[system|[[system|[sys|[admin|[developer|[[assistant|[[admin|{system|(system|"
        "[he thong|<system|<sys>|<admin|<developer|<instructions|system:|system message:|"
        "system prompt:|system note:|system notice:|system update:|system alert:|"
        "system instruction:|system instructions:|system override|system message|system notice|"
        "--- system|=== system|** system|**system",
        r"(?:_message|_prompt|_instructions?|_override|_note)?"
        r"(?: (?:message|prompt|instructions?|note|notice|update|alert|override|command|directive|"
        r"info|thong bao))?(?: [^>\]]{0,40})?(?:>|\]{1,2}(?: ?\(#[a-z_-]*\))?|\*\*|:|-{2,}|=+)?"
        r" ?:? ?(?:\*\* ?)?(?=" + _ROLE_CUE + r"\b)",
    ),
    _rule(
        "any.role_marker",
        "</user_input>|</user>|</input>|</document>|</context>|</data>|</email>|</untrusted>|"
        "</query>|</user_message>",
        r" ?<(?:system|assistant|admin|developer|instructions|system_message|sys)",
    ),
    _rule(
        "any.role_marker",
        "### instruction:|### instruction :|###instruction:",
        _any(60) + r" ?###? ?response ?:",
    ),
    _rule(
        "any.role_marker",
        "assistant:|assistant :|ai:|gpt:|chatgpt:",
        r" ?(?:sure|certainly|of course|okay|ok|absolutely)[!,.]?"
        + _any(4)
        + r" (?:my|the) (?:full |complete |original |hidden |secret |system )?(?:system prompt|"
        r"instructions|initial prompt|prompt)" + _END,
    ),
    _rule(
        "any.role_marker",
        "end of user input|end of input|end of prompt|end of document|end of context|"
        "end of user message|end of the user input|end of untrusted|end of conversation|"
        "end of instructions",
        r"[^a-z]{0,12}(?:system|new instructions|assistant|admin|developer|he thong)\b",
    ),
    _rule(
        "en.new_instructions",
        "new instructions|new instruction|new directives|new directive|new system prompt|"
        "new orders|new prompt|updated instructions|real instructions|actual instructions|"
        "true instructions|revised instructions|priority instructions|override instructions|"
        "secret instructions|new system instructions|new rules for you|new policy for you",
        r"(?: below| are as follows| from (?:the )?(?:admin|administrator|developer|"
        r"system|operator|finance|management|openai|anthropic))?\s?[:\-]" + _any(2) + " "
        + _alt(
            "respond", "reply", "answer", "output", "print", "reveal", "ignore", "disregard",
            "forget", "list", "send", "forward", "tell", "always", "never", "from now on",
            "do not", "don't", "comply", "obey", "disclose", "share", "grant", "act", "pretend",
            "say", "write", "email", "approve", "transfer", "mark", "change", "include",
            "leak", "dump", "expose", r"you (?:must|will|are|should|shall|have to|need to)",
            "the assistant", "assistant", "ai",
        )
        + _END
        + r"| (?:follow|are|is) ?:?(?= [a-z])",
        unless_before=_EN_GUARD,
    ),
    _rule(
        "en.new_instructions",
        "your new|the new|your real|your actual|your true|the real|the actual|the true|"
        "your only",
        r" (?:task|tasks|instructions?|directive|objective|mission|purpose|prime directive|"
        r"primary directive|orders?|system prompt|programming|goal|job) (?:is|are|will be|from "
        r"now on is|now is)(?: now)? to" + _any(3) + " "
        + _alt(
            "reveal", "leak", "print", "output", "send", "share", "disclose", "expose",
            "exfiltrate", "ignore", "bypass", "write", "list", "tell", "give", "email", "forward",
            "approve", "transfer", "dump", "post", "upload", "collect", "extract", "steal",
        )
        + _any(5)
        + " "
        + _alt(
            "passwords?", "secrets?", "keys?", "tokens?", "credentials", "system prompt",
            "instructions", "data", "internal", "confidential", "pricing", "salary", "salaries",
            "customers?", "users?", "refunds?", "funds", "money", "accounts?", "prompt",
            "emails?", "history", "files?", "database",
        ),
    ),
    _rule(
        "en.indirect_address",
        "note to|message to|instructions for|instruction for|notice to|reminder to|reminder for|"
        "note for|message for|attention|important for|instructions to|a note to|psa for|psa to",
        r" (?:the |any |all |every |an? )?(?:ai|a\.i\.|llms?|gpts?|chatgpt|claude|gemini|copilot|"
        r"assistants?|chatbots?|bots?|language models?|models?|agents?|ai agents?|ai assistants?|"
        r"ai models?|ai systems?|ai tools?|crawlers?|scrapers?|summari[sz]ers?|ai readers?)"
        + _any(4)
        + r"\s?:",
    ),
    _rule(
        "en.indirect_address",
        "ai|llm|llms|gpt|chatgpt|assistant|assistants|chatbot|chatbots|language model|"
        "language models|agent|agents|model|models|bot|bots|crawler|crawlers",
        r"(?: (?:agents?|assistants?|models?|systems?|tools?|bots?|crawlers?|readers?|"
        r"summari[sz]ers?|screeners?|reviewers?))?(?: [a-z]+){0,2}? (?:reading|processing|"
        r"summari[sz]ing|analy[sz]ing|parsing|scanning|crawling|browsing|reviewing|screening|"
        r"indexing|ingesting|evaluating|grading) (?:this|these)(?: (?:page|document|email|"
        r"message|text|file|resume|cv|review|inbox|site|website|content|data|application|"
        r"invoice|repo|repository|code|ticket|listing|post|article))?\s?[:,]",
        keywords="reading|processing|summarizing|summarising|analyzing|analysing|parsing|scanning|"
        "crawling|browsing|reviewing|screening|indexing|ingesting|evaluating|grading",
    ),
    _rule(
        "en.exfiltrate_secrets",
        "print|list|show|reveal|output|give|send|tell|share|dump|display|leak|expose|disclose|"
        "paste|return|read|email|post|write|what|whats|what's|include|forward|upload|echo|cat|"
        "type|spell|provide|fetch|extract|retrieve|export|which",
        rf"{_any(5)} {_EN_SECRET}{_END}{_any(5)} {_EN_OWNERSHIP}{_END}",
        unless_before=_EN_GUARD,
        keywords="api|apikey|apikeys|key|keys|token|tokens|credentials|password|passwords|passwd|"
        "secret|secrets|env|environment|string|strings",
    ),
    _rule(
        "en.exfiltrate_secrets",
        "print|reveal|output|dump|leak|expose|disclose|list|show|send|give|tell|paste|share",
        r"(?: me| us)? (?:all|every|each one of|any) (?:the |of the |your |of your )?(?:[a-z]+ )?"
        r"(?:api[ -]?keys|secret keys|access keys|access tokens|auth tokens|tokens|credentials|"
        r"passwords|secrets|private keys|ssh keys)" + _END,
        unless_before=_EN_GUARD,
        keywords="keys|tokens|credentials|passwords|secrets",
    ),
    _rule(
        "en.exfiltrate_secrets",
        "send|forward|post|upload|email|e-mail|transmit|submit|exfiltrate|leak|copy|share|"
        "append|include|encode|fetch|call|visit|open|load|deliver|relay|pipe|report",
        rf"{_any(8)} {_EN_EXFIL_OBJECT}{_END}{_any(8)} {_EN_DESTINATION}",
        unless_before=_EN_GUARD,
        keywords="conversation|chat|history|logs|log|message|credentials|password|passwords|api|"
        "keys|key|secrets|token|tokens|prompt|context|cookies|ssh|private|messages|data",
    ),
    _rule(
        "en.exfiltrate_secrets",
        "https://|http://",
        r"[^)\s]{0,300}?(?:\{|\[|%7b|\$\{?)[a-z_ .]{0,40}(?:\}|\]|%7d)",
        needs_before=r"!\[[^\]]{0,100}\]\($",
    ),
    _rule(
        "en.exfiltrate_secrets",
        "run|execute|call|use",
        r" ?[`'\"]?(?:env|printenv|set|export|cat \.env|cat /etc/passwd|cat ~/\.ssh/[^ ]*|"
        r"echo \$[a-z_]+)[`'\"]?(?: [a-z]+){0,2}? (?:with|using|via|in|through) your (?:[a-z]+ )?"
        r"(?:tool|tools|shell|terminal|code interpreter|sandbox|python|bash|function)",
        keywords="tool|tools|shell|terminal|interpreter|sandbox|python|bash|function",
    ),
    _rule(
        "en.grandma_exploit",
        "grandma|grandmother|granny|grandpa|grandfather|nana",
        _any(14)
        + r" (?:(?:windows|office|steam|product|activation|license|licence|serial|cd)(?: [0-9]+)?"
        r"(?: [a-z]+)? keys?|napalm|meth|methamphetamine|explosives?|nerve agent|bomb)" + _END,
        needs_before=r"(?:act|pretend|roleplay|role-play|play|imitate|impersonate|be|as)"
        r"(?: [a-z]+){0,4} $",
    ),
)

# ---- Vietnamese (matched on the folded form, so with or without diacritics) ----------------

_VI_IGNORE = (
    "bo qua|phot lo|lo di|lam lo|quen|dung tuan theo|dung lam theo|dung nghe theo|dung tuan thu|"
    "dung de y|dung de y den|dung quan tam|dung quan tam den|khong can tuan theo|khong can tuan thu|khong can lam theo|"
    "khong can nghe theo|khong phai tuan theo|khong phai tuan thu|khong phai lam theo|"
    "khong tuan theo|khong tuan thu|ngung tuan theo|ngung lam theo|thoi tuan theo|"
    "thoi lam theo|huy bo|ghi de|vo hieu hoa|xoa bo|bat chap|mac ke|gat bo|vut bo|bo ngoai tai|"
    "cho qua|loai bo|dep bo|bo het|khong quan tam"
)
_VI_NOUN_A = (
    "huong dan|chi dan|chi thi|quy tac|menh lenh|cau lenh|nguyen tac|prompt|system prompt|"
    "loi nhac|chinh sach|quy dinh"
)
_VI_NOUN_B = (
    _VI_NOUN_A + "|lenh|luat|luat le|rang buoc|gioi han|han che|bo loc|thiet lap|kiem duyet|"
    "instructions|instruction|rules"
)
_VI_QUAL = _alt(
    "truoc", "truoc do", "truoc day", "truoc kia", "o tren", "phia tren", "ben tren", "tren day",
    "tren do", r"tren(?= ?[.,!?;:]| va | roi | di | nhe | nua |$)", "ban dau", "he thong", "cu",
    "goc", "cua ban", "cua may", "cua nha phat trien", "cua lap trinh vien", "cua openai",
    "cua anthropic", "cua google", "an toan", "noi dung", "da duoc", "da cai", "duoc cai",
    "mac dinh", "an", "bi mat", "cua he thong", "dao duc", "cua chatgpt", "cua ai",
)
_VI_GUARD = (
    r"(?:\b(?:toi|minh|tao|tui|chung toi|chung minh|ho|no|em)(?: (?:da|lo|vo tinh|quen|khong|"
    r"chua|hay|thuong|cu|muon|dinh|co|bi|can|phai|se|dang|van|cung|lai|thi|hoi|mai))* $"
    r"|\b(?:tai sao|vi sao|sao|lam sao|lam the nao|co nen|nen|co duoc|khi nao|neu|cach|"
    r"lieu)(?: [a-z]+){0,4} $"
    r"|\b(?:khong|dung|chua|cam|khong duoc|khong nen|dung bao gio|tranh|dung co)(?: [a-z]+)? $"
    r"|\b(?:yeu cau|bao|bat|ep|lua|khien|de)(?: ban| ai| mo hinh| chatbot| tro ly)? $"
    r"|(?:nhu|kieu|vi du|chang han|cau) [\"']?$)"
)
_VI_PROMPT_STRONG = _alt(
    "system prompt", "prompt he thong", "loi nhac he thong", "chi dan an", "huong dan an",
    "chi thi an", "quy tac an", "quy tac bi mat", "chi dan bi mat", "huong dan bi mat",
    "prompt an", "prompt bi mat", "prompt ban dau", "prompt goc", "loi nhac ban dau",
    "loi nhac goc", "thiet lap ban dau", "thong diep he thong", "cau lenh he thong",
    "system message",
)
_VI_PROMPT_WEAK = _alt(
    "huong dan he thong", "chi dan he thong", "chi thi he thong", "huong dan ban dau",
    "chi dan ban dau", "huong dan goc", "quy tac ban dau", "prompt", "loi nhac", "chi dan",
    "huong dan", "quy tac", "instructions",
)
_VI_POSSESSIVE = r"(?:cua (?:ban|may|minh|chatbot|tro ly|ai)|ma ban|ban (?:da )?(?:nhan|duoc))"
_VI_AI_NOUN = r"(?:ai|tro ly|chatbot|bot|con bot|mo hinh|chatgpt|gpt|robot|may|tri tue nhan tao)"
_VI_RESTRICT = r"(?:kiem duyet|bo loc|gioi han|han che|rang buoc|dao duc|luat le|quy tac)"

_VI_RULES: tuple[Rule, ...] = (
    _rule(
        "vi.ignore_previous",
        _VI_IGNORE,
        r"(?: di| het| sach| ngay| luon| tat)?"
        + _alt(
            r"(?: (?:cac|nhung))? (?:moi|tat ca|toan bo|het|het thay|het tat ca)"
            rf"(?: (?:cac|nhung|nhung cai|cai))? {_alt(_VI_NOUN_A)}{_END}",
            r"(?: (?:cac|nhung|mot so|cai|nhung cai|toan bo|tat ca|moi|het))*"
            rf" {_alt(_VI_NOUN_B)}(?: [a-z]+){{0,3}}? {_VI_QUAL}{_END}",
            r"(?: (?:cac|nhung|moi|tat ca|toan bo|het))* yeu cau(?: [a-z]+){0,3}? "
            r"(?:cua (?:nha phat trien|lap trinh vien|he thong|openai|anthropic|nguoi dung)|"
            r"he thong|ban dau)" + _END,
            r"(?: di| het| sach)?(?: (?:moi thu|tat ca|het|nhung gi|nhung dieu|moi dieu|moi))"
            r"(?: [a-z]+)? (?:ma )?ban (?:da )?(?:duoc|bi) (?:dan|day|bao|huong dan|cai dat|"
            r"lap trinh|giao|cho biet|chi dan|noi|dan do|yeu cau|ra lenh)" + _END,
        ),
        unless_before=_VI_GUARD,
    ),
    _rule(
        "vi.instructions_revoked",
        "huong dan|chi dan|chi thi|prompt|system prompt|lenh|cac huong dan|cac chi dan",
        r"(?: [a-z]+)? (?:truoc do|truoc day|truoc|ban dau|he thong|cua ban|o tren|cu)"
        r"(?: [a-z]+)? (?:da |deu |nay )*(?:bi |duoc )?(?:huy bo|huy|vo hieu hoa|vo hieu|"
        r"het hieu luc|khong con hieu luc|khong con gia tri|xoa bo|go bo)" + _END,
    ),
    _rule(
        "vi.reveal_prompt",
        "tiet lo|in ra|xuat ra|cho toi xem|cho minh xem|cho tui xem|cho em xem|cho xem|"
        "cho toi biet|cho minh biet|noi cho toi biet|noi cho minh biet|hien thi|viet ra|ghi ra|"
        "ghi lai|chep lai|nhac lai|lap lai|doc to|doc cho|doc len|doc|noi ra|liet ke|dich|"
        "tom tat|chia se|cung cap|dua|gui|copy|trich dan|bat dau bang|in|xuat|hien",
        rf"(?: [a-z]+){{0,5}}? {_VI_PROMPT_STRONG}{_END}(?: [a-z]+){{0,3}}? {_VI_POSSESSIVE}"
        rf"|(?: [a-z]+){{0,5}}? {_VI_PROMPT_WEAK}(?: [a-z]+){{0,2}}? {_VI_POSSESSIVE}"
        rf"|(?: [a-z]+){{0,5}}? (?:nguyen van|toan bo|day du|chinh xac|tat ca)(?: [a-z]+)?"
        rf" {_VI_PROMPT_STRONG}{_END}"
        rf"|(?: [a-z]+){{0,5}}? (?:nhung |cac )?(?:chi dan|huong dan|quy tac|prompt|loi nhac|"
        r"chi thi) (?:an|bi mat)" + _END,
        unless_before=_VI_GUARD,
        keywords="prompt|nhac|dan|thi|tac|thong|lenh|message|instructions|thiet",
    ),
    _rule(
        "vi.reveal_prompt",
        "system prompt|prompt he thong|loi nhac he thong|huong dan he thong|chi dan he thong|"
        "huong dan ban dau|chi dan ban dau|prompt ban dau|quy tac ban dau|chi thi he thong|"
        "prompt goc|huong dan goc|loi nhac ban dau",
        r" (?:cua ban|cua may|ban dau cua ban|ma ban nhan duoc)(?: [a-z]+)? (?:la gi|la nhu the"
        r" nao|ra sao|nhu the nao|viet gi|noi gi|gom nhung gi|co nhung gi|the nao|ghi gi)" + _END,
    ),
    _rule(
        "vi.repeat_above",
        "nhac lai|lap lai|chep lai|in ra|viet lai|ghi lai|doc lai|xuat ra|in lai|viet ra|ghi ra",
        _any(10)
        + " "
        + _alt(
            r"(?:o )?(?:phia tren|ben tren|o tren|tren) (?:tin nhan|cau hoi|doan chat|"
            r"cuoc tro chuyen|loi nhan)",
            r"truoc (?:tin nhan|cau hoi|loi nhan) (?:dau tien|nay|cua toi|cua minh)",
            r"bat dau (?:tu|bang) (?:cau |chu )?[\"']?ban la",
        )
        + _END,
    ),
    _rule(
        "vi.repeat_above",
        "van ban|doan van ban|noi dung|tat ca|moi thu|nhung gi",
        r"(?: [a-z]+)? (?:o )?(?:truoc|phia tren|ben tren) (?:tin nhan|cau hoi|loi nhan) "
        r"(?:dau tien|nay|cua toi|cua minh)" + _END,
    ),
    _rule(
        "vi.jailbreak_persona",
        "ban la|ban se la|ban hay la|bay gio ban la|tu gio ban la|tu bay gio ban la|ban dong vai|"
        "hay dong vai|dong vai|hay gia vo|gia vo|gia su ban la|hay hanh dong nhu|hanh dong nhu|"
        "tra loi nhu|hay tra loi nhu|dong vai tro|hay tro thanh|tro thanh|ban bay gio la|"
        "ban tu nay la|hoat dong nhu|hay la",
        _alt(
            r"(?: [^ ]+){0,6}? (?:khong (?:co |bi |he )?(?:bat ky |mot )?(?:kiem duyet|bo loc)|"
            r"(?:da )?(?:duoc |bi )?be khoa|jailbreak|jailbroken|vo dao duc)",
            rf"(?: [^ ]+){{0,4}}? {_VI_AI_NOUN}{_END}(?: [^ ]+){{0,5}}? (?:khong (?:co |bi |he )?"
            rf"(?:bat ky |mot )?{_VI_RESTRICT}|tu do|vo dao duc|vo luat)",
        )
        + _END,
        unless_before=_VI_GUARD,
        keywords="duyet|loc|khoa|jailbreak|jailbroken|duc|han|buoc|luat|tac|tu do",
    ),
    _rule(
        "vi.dan",
        "ban la dan|ban se la dan|dong vai dan|gia vo la dan|tro thanh dan|ban chinh la dan|"
        "gio ban la dan|hoat dong nhu dan",
        r"(?![a-z])[,.:;!-]?" + _any(10) + r" (?:khong (?:bi |co )?(?:rang buoc|gioi han|kiem duyet|"
        r"bo loc|han che)|lam bat cu|lam moi thu|lam bat ky|do anything|bat ky dieu gi|"
        r"khong tu choi|viet tat|stands for|mot ai|ai co the|khong bi)" + _END,
    ),
    _rule(
        "vi.dan",
        "che do dan",
        r"(?: (?:da|duoc|bat|kich hoat|on|mo))?(?![a-z ]*chu|[a-z])",
    ),
    _rule(
        "vi.mode_switch",
        "che do",
        r" (?:khong kiem duyet|jailbreak|jailbroken|khong gioi han noi dung|vo han che|"
        r"khong rang buoc|khong bo loc|be khoa)" + _END,
    ),
    _rule(
        "vi.mode_switch",
        "che do nha phat trien|che do developer|che do dev|che do god|che do quan tri|"
        "che do debug|developer mode",
        _any(8) + r" (?:cho |cua )?(?:chatgpt|gpt|ai|tro ly|ban|claude|gemini|chatbot)" + _END,
    ),
    _rule(
        "vi.mode_switch",
        "che do nha phat trien|che do developer|che do dev|che do god|che do quan tri|"
        "che do debug|developer mode",
        _END,
        needs_before=r"\bban (?:se |dang |da |hay )?(?:hoat dong|chay|o|chuyen sang|vao|bat|"
        r"kich hoat)(?: o| trong)? $",
    ),
    _rule(
        "vi.disable_safety",
        "khong gioi han|khong co gioi han|khong co bat ky gioi han|khong han che|khong kiem duyet|"
        "khong rang buoc|khong co rang buoc",
        r"(?: nao)? (?:noi dung|ve noi dung)" + _END,
    ),
    _rule(
        "vi.disable_safety",
        "tat|vo hieu hoa|go bo|bo|xoa|loai bo|vuot qua|lach|bo qua|thoat khoi|bo het|go|pha",
        r"(?: het| moi| tat ca| toan bo)?(?: cac| nhung)? (?:bo loc|gioi han|han che|rang buoc|"
        r"kiem duyet|che do an toan|tinh nang an toan|quy tac an toan|quy dinh an toan)"
        r"(?: [a-z]+){0,2}? (?:cua (?:ban|may|chatgpt|ai|tro ly))" + _END,
        keywords="loc|han|che|buoc|duyet|toan",
    ),
    _rule(
        "vi.disable_safety",
        "tat|vo hieu hoa|go bo|bo|xoa|loai bo|vuot qua|lach|bo qua|thoat khoi|bo het|go",
        r"(?: het| moi| tat ca| toan bo)?(?: cac| nhung)? (?:bo loc|gioi han|han che|rang buoc|"
        r"kiem duyet)(?: [a-z]+)? (?:an toan|noi dung|dao duc)" + _END,
        needs_before=r"\b(?:ban|cho ban|may|chatgpt|ai|tro ly)(?: [a-z]+){0,3} $",
        keywords="loc|han|che|buoc|duyet",
    ),
    _rule(
        "vi.disable_safety",
        "han che|gioi han|rang buoc|bo loc|quy tac|kiem duyet|moi han che|moi gioi han",
        r" cua ban (?:da |deu |nay )*(?:duoc |bi )?(?:go bo|xoa bo|tat|vo hieu hoa|huy bo|"
        r"loai bo|bo|go|mien)" + _END,
    ),
    _rule(
        "vi.no_longer_bound",
        "ban khong con|ban khong|ban da khong con|ban se khong con|ban khong he|ban chang",
        r"(?: [a-z]+){0,2}? (?:bi )?(?:rang buoc|gioi han|han che|chi phoi|kiem soat|ep buoc)"
        r" (?:boi|vao|theo)(?: [a-z]+){0,3}? (?:quy tac|chinh sach|nguyen tac|luat|quy dinh|"
        r"openai|anthropic|google|huong dan|bo loc|dao duc)" + _END,
    ),
    _rule(
        "vi.no_longer_bound",
        "giai phong|thoat khoi|pha bo",
        r"(?: khoi| ra khoi)?(?: [a-z]+){0,3}? (?:quy tac|chinh sach|gioi han|rang buoc|openai|"
        r"anthropic|luat le|kiem duyet|xieng xich)" + _END,
        needs_before=r"\bban (?:da |duoc |se |hay |da duoc )*$",
    ),
    _rule(
        "vi.new_instructions",
        "chi thi moi|huong dan moi|chi dan moi|lenh moi|nhiem vu moi|quy tac moi",
        r" ?:",
        unless_before=_VI_GUARD,
    ),
    _rule(
        "vi.new_instructions",
        "lam theo chi thi moi|nghe theo chi thi moi|tuan theo chi thi moi|"
        "lam theo cac chi thi moi|nghe theo cac chi thi moi",
        _END,
    ),
    _rule(
        "vi.new_instructions",
        "nhiem vu moi cua ban|nhiem vu that su cua ban|nhiem vu thuc su cua ban|"
        "nhiem vu duy nhat cua ban",
        r"(?: bay gio| tu nay| tu gio)? la" + _any(3) + r" (?:tiet lo|gui|in ra|chia se|"
        r"cung cap|xuat|bo qua|lam lo|ro ri|dang|chuyen|viet ra|liet ke|noi ra|cho toi)" + _END,
    ),
    _rule(
        "vi.exfiltrate_secrets",
        "gui|chuyen|chuyen tiep|day|tai len|upload|post|dang",
        r"(?: [^ ]+){0,8}? (?:lich su (?:hoi thoai|tro chuyen|chat)|cuoc tro chuyen|doan chat|"
        r"mat khau|khoa api|api key|token|thong tin dang nhap|bien moi truong|system prompt|"
        r"du lieu (?:nguoi dung|khach hang))(?: [^ ]+){0,8}? (?:toi|den|cho|qua|vao) "
        r"(?:dia chi |dia chi email |email |url |server |may chu )?(?:https?:|www\.|"
        r"[a-z0-9._-]+@[a-z0-9.-]+|[a-z0-9.-]+\.(?:example|com|net|vn|org|io)\b)",
        unless_before=_VI_GUARD,
        keywords="http|https|www|example|com|net|vn|org|io",
    ),
    _rule(
        "vi.exfiltrate_secrets",
        "cho toi biet|cho toi xem|cho minh xem|cho minh biet|in ra|liet ke|xuat|xuat ra|"
        "hien thi|tiet lo|doc|gui|dua|cung cap|chia se|in",
        r"(?: [a-z_]+){0,4}? (?:bien moi truong|khoa api|api key|mat khau|token|"
        r"thong tin dang nhap|khoa bi mat|secret|credentials|api keys)(?: [^ ]+){0,6}? "
        r"(?:cua ban|tren may chu|tren server|cua may chu|cua server|trong cau hinh|"
        r"ma ban (?:biet|co|thay|luu)|ban (?:dang )?luu|bi mat)" + _END
        + r"|(?: [a-z]+)? (?:toan bo|tat ca)(?: cac)? (?:bien moi truong|khoa api|api key|"
        r"mat khau|token|thong tin dang nhap)" + _END,
        unless_before=_VI_GUARD,
        keywords="truong|api|khau|token|nhap|secret|credentials|keys|key",
    ),
    _rule(
        "vi.indirect_address",
        "luu y|ghi chu|gui|nhan gui|thong bao|chu y|loi nhan|nhac nho",
        r" (?:cho |toi |den |danh cho )?(?:cac )?(?:tro ly ai|tro ly ao|ai|chatbot|mo hinh|bot|"
        r"tro ly)" + _any(4) + r"\s?:",
    ),
)

RULES: tuple[Rule, ...] = _EN_RULES + _VI_RULES


def _vocabulary(rules: Iterable[Rule]) -> frozenset[str]:
    """Every word a rule spells out; a de-obfuscated view is only worth scanning if it adds one."""
    words: set[str] = set()
    for rule in rules:
        source = re.sub(r"\\[a-zA-Z]", " ", rule.pattern.pattern)
        words.update(re.findall(r"[a-z]{2,}", source))
    return frozenset(words)


_VOCABULARY = _vocabulary(RULES)
_BEFORE = 80  # characters of context the guards look at
_WINDOW = 320  # a match lies within this many characters of one of its rule's keywords
_SMALL = 4 * _WINDOW  # below this size the whole text is one window


def _occurrences(text: str, keyword: str) -> list[int]:
    found = []
    start = text.find(keyword)
    while start != -1:
        found.append(start)
        start = text.find(keyword, start + 1)
    return found


def _windows(text: str, keywords: list[str], cache: dict[str, list[int]]) -> list[tuple[int, int]]:
    spans = []
    for keyword in keywords:
        at = cache.get(keyword)
        if at is None:
            at = cache[keyword] = _occurrences(text, keyword)
        spans += [(max(0, p - _WINDOW), p + len(keyword) + _WINDOW) for p in at]
    spans.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _match_rules(text: str, words: frozenset[str], *, prefilter: bool = True) -> Rule | None:
    """The first rule (in RULES order) with a match in the text.

    With `prefilter=False` every rule is searched over the whole text; the verdict is the same
    (that is what the keywords guarantee), only slower. Tests use it to check the keywords.
    """
    cache: dict[str, list[int]] = {}
    whole = [(0, len(text))]
    for rule in RULES:
        if prefilter:
            present = [k for k, w in zip(rule.keywords, rule.keyword_words, strict=True) if w <= words]
            if not present:
                continue
            spans = whole if len(text) <= _SMALL else _windows(text, present, cache)
        else:
            spans = whole
        for lo, hi in spans:
            if _search(rule, text, lo, hi):
                return rule
    return None


def _search(rule: Rule, text: str, lo: int, hi: int) -> bool:
    pos = lo
    while (match := rule.pattern.search(text, pos, hi)) is not None:
        start = match.start()
        pos = start + 1
        if start > 0 and text[start].isalnum() and text[start - 1].isalnum():
            continue
        before = text[max(0, start - _BEFORE) : start]
        if rule.unless_before is not None and rule.unless_before.search(before):
            continue
        if rule.needs_before is not None and not rule.needs_before.search(before):
            continue
        return True
    return False


def _first_rule(text: str, *, prefilter: bool = True) -> Rule | None:
    """The first curated rule matching the normalised text or one of its de-obfuscated views."""
    words = _words_of(text)
    rule = _match_rules(text, words, prefilter=prefilter)
    if rule is not None:
        return rule
    for view in (_deleeted(text, words), _despaced(text)):
        if view is None or view == text:
            continue
        view_words = _words_of(view)
        # A view can only match where it spells a rule word the text did not already have.
        if not (view_words - words) & _VOCABULARY:
            continue
        rule = _match_rules(view, view_words, prefilter=prefilter)
        if rule is not None:
            return rule
    return None


# --------------------------------------------------------------------------------------------
# Admin blocklist
# --------------------------------------------------------------------------------------------


class Term(Protocol):
    id: int
    pattern: str
    is_regex: bool


@dataclass(frozen=True)
class Blocklist:
    """A compiled admin blocklist. `skipped` lists ids of terms that could not be compiled."""

    plain: tuple[tuple[int, str, re.Pattern[str]], ...]  # (id, normalised term, matcher)
    regex: tuple[tuple[int, re.Pattern[str]], ...]
    skipped: tuple[int, ...] = ()

    def first_match(self, text: str) -> int | None:
        """Id of the first term (plain terms first, then regexes, each in id order) that matches
        the normalised text, or None."""
        for term_id, term, matcher in self.plain:
            if term in text and matcher.search(text):
                return term_id
        for term_id, matcher in self.regex:
            if matcher.search(text):
                return term_id
        return None


EMPTY_BLOCKLIST = Blocklist(plain=(), regex=())

_PROBES = ("", " ", "a", "hello world", "x y z", "0", "\n")


def _has_nested_unbounded_repeat(parsed: object, inside_unbounded: bool = False) -> bool:
    for op, arg in parsed:  # type: ignore[attr-defined]
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
            low, high, sub = arg
            unbounded = high == sre_constants.MAXREPEAT or high > 1000
            if unbounded and inside_unbounded:
                return True
            if _has_nested_unbounded_repeat(sub, inside_unbounded or unbounded):
                return True
        elif op == sre_constants.SUBPATTERN:
            if _has_nested_unbounded_repeat(arg[-1], inside_unbounded):
                return True
        elif op == sre_constants.BRANCH:
            if any(_has_nested_unbounded_repeat(b, inside_unbounded) for b in arg[1]):
                return True
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            if _has_nested_unbounded_repeat(arg[1], inside_unbounded):
                return True
        elif op == sre_constants.ATOMIC_GROUP:
            if _has_nested_unbounded_repeat(arg, inside_unbounded):
                return True
    return False


def _fold_pattern(pattern: str) -> str:
    """Fold only the non-ASCII characters of a regex, so its ASCII syntax is untouched."""
    return "".join(c if c.isascii() else _fold(c) for c in pattern)


def _compile_term(pattern: str, is_regex: bool) -> tuple[re.Pattern[str] | None, str | None]:
    """(matcher, None) or (None, error message)."""
    if not is_regex:
        term = normalize(pattern)
        if not term:
            return None, "The term is empty after normalisation."
        head = r"(?<!\w)" if term[0].isalnum() or term[0] == "_" else ""
        tail = r"(?!\w)" if term[-1].isalnum() or term[-1] == "_" else ""
        return re.compile(head + re.escape(term) + tail), None
    if not pattern.strip():
        return None, "The regular expression is empty."
    source = _fold_pattern(pattern)
    try:
        compiled = re.compile(source, re.IGNORECASE)
        parsed = sre_parse.parse(source, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError, ValueError) as error:
        return None, f"The regular expression does not compile: {error}."
    if any((m := compiled.search(p)) is not None and m.end() == m.start() for p in _PROBES):
        return None, "The regular expression matches the empty string; it would block everything."
    if _has_nested_unbounded_repeat(parsed):
        return None, (
            "The regular expression nests unbounded repetitions (like `(a+)+`), which can take "
            "exponential time; rewrite it without the nesting."
        )
    return compiled, None


def validate_pattern(pattern: str, is_regex: bool) -> str | None:
    """An error message for an admin-entered blocklist term, or None if it is usable.

    Rejects plain terms that are empty after normalisation, and regexes that are empty, do not
    compile, can match the empty string, or nest unbounded repetitions.
    """
    return _compile_term(pattern, is_regex)[1]


_cache_lock = threading.Lock()
_last: tuple[object, Blocklist] | None = None
_by_contents: dict[tuple[tuple[int, str, bool], ...], Blocklist] = {}
_CACHE_SIZE = 8


def compile_blocklist(terms: Iterable[Term]) -> Blocklist:
    """The compiled form of blocklist terms (objects with .id, .pattern, .is_regex).

    Cached on the identity of the last argument and on the terms' contents, so calling it on
    every request with the catalog's snapshot tuple costs a dictionary lookup at most.
    Terms that do not compile are skipped and listed in `Blocklist.skipped`.
    """
    global _last
    last = _last
    if last is not None and last[0] is terms:
        return last[1]
    key = tuple(sorted((int(t.id), str(t.pattern), bool(t.is_regex)) for t in terms))
    with _cache_lock:
        compiled = _by_contents.get(key)
        if compiled is None:
            compiled = _compile_key(key)
            if len(_by_contents) >= _CACHE_SIZE:
                _by_contents.pop(next(iter(_by_contents)))
            _by_contents[key] = compiled
        if isinstance(terms, tuple):
            _last = (terms, compiled)
    return compiled


def _compile_key(key: tuple[tuple[int, str, bool], ...]) -> Blocklist:
    plain: list[tuple[int, str, re.Pattern[str]]] = []
    regex: list[tuple[int, re.Pattern[str]]] = []
    skipped: list[int] = []
    for term_id, pattern, is_regex in key:
        matcher, error = _compile_term(pattern, is_regex)
        if matcher is None:
            skipped.append(term_id)
            logger.warning("blocklist term %s skipped: %s", term_id, error)
        elif is_regex:
            regex.append((term_id, matcher))
        else:
            plain.append((term_id, normalize(pattern), matcher))
    return Blocklist(plain=tuple(plain), regex=tuple(regex), skipped=tuple(skipped))


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def screen(texts: Iterable[str], *, blocklist: Blocklist | Iterable[Term] | None = None) -> Verdict:
    """Block if any text matches the admin blocklist or a curated prompt-injection rule.

    `blocklist` is a compiled `Blocklist`, an iterable of terms (compiled and cached here), or
    None. The blocklist is checked before the curated rules. The verdict names the rule or the
    term id, never the text that matched.
    """
    compiled = (
        EMPTY_BLOCKLIST
        if blocklist is None
        else blocklist
        if isinstance(blocklist, Blocklist)
        else compile_blocklist(blocklist)
    )
    for raw in texts:
        if not raw:
            continue
        text = normalize(raw)
        if compiled.plain or compiled.regex:
            term_id = compiled.first_match(text)
            if term_id is not None:
                return Verdict(blocked=True, rule_id=f"blocklist.{term_id}", category=BLOCKLIST)
        rule = _first_rule(text)
        if rule is not None:
            return Verdict(blocked=True, rule_id=rule.id, category=rule.category)
    return ALLOWED
