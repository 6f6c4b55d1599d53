"""Number tokens as producers print them: values, printed precision, and `=`-form value shapes."""

from __future__ import annotations

import re
from typing import NamedTuple

EXACT = 17  # digits credited to integers and non-finite values: they are exact as printed
TOKEN_MAX = 64  # characters: no printf writes a longer number; longer tokens skip every regex
INDEX_DIGITS = 18  # an integer index or pixel of more digits is not one (int64-safe)
# any script's decimal digits: "１００" starts like a number too (and is not one C prints)
_NUMBER_LIKE = re.compile(r"[+-]?(?:\d|\.\d|inf|nan)", re.IGNORECASE).match


def sigdigits(token: str) -> int:
    """Significant digits a number token shows ("0.002825" -> 4, "1.000e+02" -> 4, "7" -> 17).

    Leading zeros do not count; trailing zeros after a decimal point do (a fixed-width format
    printed them on purpose). Integers and inf/nan are exact.
    """
    return _digits(token) or EXACT


def _digits(t: str) -> int:
    """Like sigdigits, but 0 for exact tokens, so ``max(map(_digits, tokens)) or EXACT`` is the record's.

    Written for speed (it runs once per printed number): stripping sign, leading zeros and a
    leading point in one C call leaves the significant mantissa digits, plus the point when the
    number has an integer part.
    """
    s = t.lstrip("+-0.")
    e = s.find("e")
    if e < 0:
        e = s.find("E")
    if e >= 0:
        s = s[:e]
    elif "." not in t:
        return 0  # an integer, inf or nan
    if s:
        return len(s) - ("." in s)
    return _zero_digits(t)


def _zero_digits(t: str) -> int:
    """Digits of a zero printed with a fixed width ("0.000000e+00" -> 7)."""
    mant = t.lstrip("+-").lower().partition("e")[0]
    return max(len(mant.replace(".", "")), 1)


def record_digits(tokens) -> int:
    """The most digits any non-integer component shows; EXACT when every component is exact."""
    return max(map(_digits, tokens)) or EXACT


def is_int_token(tok: str) -> bool:
    """An integer as C prints it: ASCII digits ("²" and "١" are digits to str.isdigit, not to C)."""
    digits = tok[1:] if tok[:1] in "+-" else tok
    return digits.isascii() and digits.isdigit()


def is_index(tok: str) -> bool:
    """An integer that can be a loop index or a pixel: ``is_int_token`` of at most INDEX_DIGITS."""
    return is_int_token(tok) and len(tok) <= INDEX_DIGITS + 1


def is_number(tok: str) -> bool:
    """Whether ``float`` reads ``tok`` as C's strtod would: ASCII, no Python-only "1_00"."""
    if not tok.isascii() or "_" in tok:
        return False
    try:
        float(tok)
    except ValueError:
        return False
    return True


def number_like(tok: str) -> bool:
    """Whether a token starts like a number (so a failure to read it is a malformed number, not text)."""
    return _NUMBER_LIKE(tok) is not None


def floats(tokens) -> tuple[float, ...] | None:
    """The tokens as floats, or None when one is not a number (C's syntax: see ``is_number``)."""
    if not all(map(is_number, tokens)):
        return None
    return tuple(map(float, tokens))


def first_bad(tokens) -> str | None:
    for tok in tokens:
        if not is_number(tok):
            return tok
    return None


def shown(value, limit: int = 40) -> str:
    """``repr(value)`` for an error line, cut at ``limit`` characters: a hostile kilobyte token is
    never echoed whole."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class EqValue(NamedTuple):
    """The parsed right-hand side of a ``PREFIX:name=value`` line."""

    kind: str  # "number" | "int" | "matrix" | "labelled" | "string"
    values: tuple[float, ...]
    sigdigits: int
    labels: tuple[str, ...] = ()
    shape: tuple[int, int] | None = None


def parse_eq_value(text: str) -> EqValue | None:
    """Vectors ``a b c``, matrices ``[a b c; d e f]``, labelled ``X:1 Y:2``, else a string; None
    for a malformed number (a value that starts like one but is not: "1_00", "1.2e", "0.5x"),
    which is neither a number nor text the producer meant."""
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        matrix = _matrix(stripped[1:-1])
        if matrix is not None:
            return matrix
    tokens = stripped.split()
    if tokens:
        values = floats(tokens)
        if values is not None:
            kind = "int" if all(map(is_int_token, tokens)) else "number"
            return EqValue(kind, values, record_digits(tokens))
        labelled = _labelled(tokens)
        if labelled is not None:
            return labelled
        if number_like(tokens[0]):
            return None
    return EqValue("string", (), EXACT)


def _matrix(body: str) -> EqValue | None:
    rows = [r.split() for r in body.split(";")]
    if not rows or any(not r for r in rows) or len({len(r) for r in rows}) != 1:
        return None
    tokens = [t for r in rows for t in r]
    values = floats(tokens)
    if values is None:
        return None
    return EqValue("matrix", values, record_digits(tokens), shape=(len(rows), len(rows[0])))


def _labelled(tokens: list[str]) -> EqValue | None:
    # A single "label:value" (e.g. structure_factors=default_F:100) reads better as a string.
    if len(tokens) < 2:
        return None
    labels, numbers = [], []
    for tok in tokens:
        label, sep, num = tok.rpartition(":")
        if not sep or not label or not label.replace("_", "a").isalnum():
            return None
        labels.append(label)
        numbers.append(num)
    values = floats(numbers)
    if values is None:
        return None
    return EqValue("labelled", values, record_digits(numbers), labels=tuple(labels))
