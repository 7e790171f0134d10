"""Regex validation with the engine that runs the regex: RE2, configured as ClickHouse's
``match()`` configures it.

Why the real engine: checking with Python's ``re`` plus a deny-list let through patterns
RE2 refuses (``a{1001}``, ``x\\Z``, ``a*+``, ``(?#c)``: a 500 from ClickHouse), refused
valid RE2 (``\\p{L}``, ``\\x{41}``, ``\\Qa.b\\E``), and let ``a{,3}`` match nothing (Python
reads ``{,3}`` as ``{0,3}``, RE2 as the literal text ``{,3}``).

ClickHouse (``Regexps::get`` → ``OptimizedRegularExpression``) compiles ``match()``
patterns with RE2's default options (UTF-8, 8 MiB program memory) plus ``dot_nl`` and
without error logging; ``RE_NO_CAPTURE`` only skips counting groups. The same options
here make "compiles here" equal "compiles there" (tests/test_regex_validation.py checks
both directions on chDB).

One deliberate refusal beyond RE2's own: ``{,n}`` and ``{,}`` in quantifier position. RE2
matches them as the literal text, which is almost never what the writer meant (Python and
PCRE read ``{0,n}``), so we ask for ``{0,n}`` (or ``\\{,n}`` for the text). A stray ``)``,
at which ClickHouse's substring pre-analysis would silently cut the pattern short without
compiling it, is already an RE2 error.

No Django imports: callers wrap the message in their own error type.
"""

from __future__ import annotations

import re

import re2

MAX_PATTERN_LENGTH = 1_000
"""Characters; the API and blocking rules share the limit."""

RE2_SYNTAX_URL = "https://github.com/google/re2/wiki/Syntax"


class InvalidRegexError(ValueError):
    """A pattern ClickHouse would refuse, or would read differently from its writer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _clickhouse_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # ClickHouse: never write to stderr from library code
    options.dot_nl = True  # Regexps::get always adds RE_DOT_NL
    return options


_OPTIONS = _clickhouse_options()

# RE2's error texts ("<kind>: <argument>") → what to tell the writer. The argument is the
# offending piece of the pattern, quoted back.
_ESCAPE_HINTS = {
    "\\Z": "use \\z (end of text) or $",
    "\\u": "write a code point as \\x{0041}",
    "\\U": "write a code point as \\x{0041}",
    "\\N": "write a code point as \\x{0041}",
    "\\e": "write ESC as \\x1B",
    "\\c": "write a control character as \\x01 .. \\x1F",
    "\\h": "use [ \\t] for horizontal space",
    "\\R": "use \\r?\\n for a line break",
    "\\Q": "\\Q...\\E cannot appear inside [...]",
}
_PERL_OPERATORS = {
    "(?=": "look-around ((?=...), (?!...), (?<=...), (?<!...)) is not supported",
    "(?!": "look-around ((?=...), (?!...), (?<=...), (?<!...)) is not supported",
    "(?<=": "look-around ((?=...), (?!...), (?<=...), (?<!...)) is not supported",
    "(?<!": "look-around ((?=...), (?!...), (?<=...), (?<!...)) is not supported",
    "(?>": "atomic groups (?>...) are not supported",
    "(?#": "comments (?#...) are not supported",
    "(?P": "(?P must start a named group (?P<name>...); named back-references (?P=name) "
    "are not supported",
}


def _explain(error: str) -> str:
    """A readable reason from RE2's error text, naming the offending part."""
    kind, _, arg = error.partition(": ")
    if kind == "invalid escape sequence":
        if re.fullmatch(r"\\[1-9]", arg):
            return f"back-references ({arg}) are not supported"
        hint = _ESCAPE_HINTS.get(arg)
        return f"{arg} is not an RE2 escape" + (f"; {hint}" if hint else "")
    if kind == "invalid perl operator":
        for prefix, reason in _PERL_OPERATORS.items():
            if arg.startswith(prefix):
                return f"{reason}; found {arg}"
        return f"{arg} is an unknown group or flag; flags are i, m, s and U, as (?i) or (?i:...)"
    if kind == "invalid repetition size":
        return (
            f"repetition {arg} is out of range: counts go up to 1000 (nested repetitions "
            "multiply) and the minimum must not exceed the maximum"
        )
    if kind == "bad repetition operator":
        return (
            f"{arg}: a repetition cannot be repeated; possessive quantifiers (*+, ++, ?+) "
            "are not supported, and a lazy one is written *?, +?, ??"
        )
    if kind == "no argument for repetition operator":
        return f"{arg} has nothing before it to repeat; write \\{arg} for the character"
    if kind == "missing )":
        return "unbalanced parentheses: a ( is never closed"
    if kind == "unexpected )":
        return "unbalanced parentheses: a ) has no matching ("
    if kind == "missing ]":
        return "a [ character class is never closed; write \\[ for the character"
    if kind == "trailing \\":
        return "the pattern ends with a lone backslash; write \\\\ for the character"
    if kind == "invalid character class range":
        return f"{arg} is not a valid character class or range"
    if kind == "invalid character class":
        return f"{arg} is not a valid character class"
    if kind == "invalid named capture group":
        return f"{arg} is not a valid group name (letters, digits, underscore)"
    if kind == "duplicate capture group name":
        return f"the group name in {arg} is used twice"
    if kind.startswith("pattern too large"):
        return "the pattern is too large for RE2 (its compiled form exceeds 8 MiB)"
    return error


_LITERAL_BRACE = re.compile(r"\{,(\d*)\}")


def _literal_brace_repetitions(pattern: str) -> list[str]:
    """``{,n}`` / ``{,}`` in quantifier position (outside ``[...]``, ``\\Q...\\E`` and
    escapes): RE2 reads them as text. Only called on patterns RE2 compiled."""
    found: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            if pattern.startswith("Q", i + 1):
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
            else:
                i += 2
            continue
        if char == "[":
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):
                i += 1
            while i < n and pattern[i] != "]":
                if pattern[i] == "\\":
                    i += 2
                elif pattern.startswith("[:", i) and (end := pattern.find(":]", i + 2)) >= 0:
                    i = end + 2
                else:
                    i += 1
            i += 1
            continue
        if char == "{" and (literal := _LITERAL_BRACE.match(pattern, i)):
            found.append(literal.group(0))
            i = literal.end()
            continue
        i += 1
    return found


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used with ClickHouse's ``match()``, or None when it can.

    The empty pattern is valid (it matches everything); callers that forbid it say so
    themselves."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"at most {MAX_PATTERN_LENGTH} characters are allowed, got {len(pattern)}"
    try:
        encoded = pattern.encode("utf-8")
    except UnicodeEncodeError:
        return "the pattern is not valid Unicode (it contains a lone surrogate)"
    try:
        re2.compile(encoded, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else str(exc)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return f"{_explain(detail)} (RE2 syntax: {RE2_SYNTAX_URL})"
    literal = _literal_brace_repetitions(pattern)
    if literal:
        piece = literal[0]
        upper = piece[2:-1]
        instead = f"{{0,{upper}}}" if upper else "*"
        return (
            f"{piece} is not a repetition in RE2 (it would match the text {piece!r}); "
            f"write {instead}, or \\{piece} for the literal text"
        )
    return None


def validate_regex(pattern: str) -> str:
    """``pattern`` unchanged, or ``InvalidRegexError`` saying what is wrong."""
    problem = regex_problem(pattern)
    if problem is not None:
        raise InvalidRegexError(problem)
    return pattern
