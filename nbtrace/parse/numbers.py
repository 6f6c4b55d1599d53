"""Number tokens as producers print them: values, printed precision, and `=`-form value shapes."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

EXACT = 17  # digits credited to integers and non-finite values: they are exact as printed


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
    return tok.isdigit() or (tok[:1] in "+-" and tok[1:].isdigit())


def floats(tokens) -> tuple[float, ...] | None:
    """The tokens as floats, or None when one is not a number."""
    try:
        return tuple(map(float, tokens))
    except ValueError:
        return None


def first_bad(tokens) -> str | None:
    for tok in tokens:
        try:
            float(tok)
        except ValueError:
            return tok
    return None


class EqValue(NamedTuple):
    """The parsed right-hand side of a ``PREFIX:name=value`` line."""

    kind: str  # "number" | "int" | "matrix" | "labelled" | "string"
    values: tuple[float, ...]
    sigdigits: int
    labels: tuple[str, ...] = ()
    shape: tuple[int, int] | None = None


def parse_eq_value(text: str) -> EqValue:
    """Vectors ``a b c``, matrices ``[a b c; d e f]``, labelled ``X:1 Y:2``, else a string."""
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


_BIG = np.iinfo(np.int32).max
# byte classes for digits_many: bit 1 leading-strip character (+ - 0 .), 2 point, 4 exponent
# letter, 8 separator, 16 sign or point (not counted in a zero's printed digits)
_CLASS = np.zeros(256, dtype=np.uint8)
for _ch, _bits in (("+", 1 | 16), ("-", 1 | 16), ("0", 1), (".", 1 | 2 | 16), ("e", 4), ("E", 4), (" ", 8)):
    _CLASS[ord(_ch)] = _bits


def digits_many(tokens: list[str]) -> np.ndarray:
    """``_digits`` of every token at once (int64 array), by numpy over the joined bytes.

    For tokens that ``float()`` accepts (at most one point, in the mantissa). The same rule as
    ``_digits``: significant digits run from the first character that is not one of ``+-0.`` to
    the exponent (or the end), less one for a point among them; tokens with neither a point nor
    an exponent are exact (0); an all-zero mantissa counts its printed digits (rare: per token).
    Non-ASCII tokens (float() accepts other scripts' digits) all take ``_digits``.
    """
    text = " ".join(tokens)
    if not text.isascii() or not tokens or not all(tokens):
        return np.fromiter(map(_digits, tokens), dtype=np.int64, count=len(tokens))
    cls = _CLASS.take(np.frombuffer(text.encode("ascii"), dtype=np.uint8))
    n = len(cls)
    pos = np.arange(n, dtype=np.int32)
    sep = np.flatnonzero(cls == 8).astype(np.int32)
    starts = np.concatenate(([0], sep + 1)).astype(np.int32)
    ends = np.concatenate((sep, [n])).astype(np.int32)

    def first_where(mask):  # position of the first marked byte of each token, else _BIG
        return np.minimum.reduceat(np.where(mask, pos, _BIG), starts)

    e_pos = first_where(cls == 4)
    has_e = e_pos < ends
    mant_end = np.where(has_e, e_pos, ends)
    dot = first_where(cls & 2)
    has_dot = dot < ends
    first = np.minimum(first_where((cls & 9) == 0), mant_end)  # first significant character
    region = mant_end - first
    digits = region - ((dot >= first) & (dot < mant_end))
    out = np.where(has_e | has_dot, digits, 0).astype(np.int64)
    for i in np.flatnonzero((region == 0) & (has_e | has_dot)).tolist():
        out[i] = _zero_digits(tokens[i])
    return out
