"""nanoBragg's free-text ``TRACE:`` narrative (the crystal setup block), read as low-precision taps.

    TRACE:   a_star = [0.01, 0, 0] |a_star| = 0.01
    TRACE:   After conversion: a = [1e-08, 6.12323e-25, 6.12323e-25] |a| = 1e-08 meters
    TRACE:   V_star = a_star . (b_star x c_star) = 1e-06
    TRACE:   V_cell = 1e+06, V_star = 1e-06
    TRACE: Direct-space cell volume: V_cell = 1/V_star = 1e+06

The C prints these with ``%g`` (six significant digits), and one key holds different things in
different steps (``a`` in Å, then ``After conversion: a`` in metres). So a step's label becomes
part of the name (``a_after_conversion``), which keeps the two apart and never lets them meet a
per-pixel tap; a repeat of the same step is a later occurrence, as any repeated tap. The norm
``|a| = …`` is derived from the vector beside it and is not kept twice.
"""

from __future__ import annotations

import re

from nbtrace.engine.parse.numbers import TOKEN_MAX, floats

PRINTED_DIGITS = 6  # %g: the precision the C's narrative is printed with
_LABEL = re.compile(r"^([A-Za-z][A-Za-z0-9 _()-]*?):\s+(.*\S)$")
_BRACKETED = re.compile(r"^[\[(]([^\[\]()]*)[\])]")
_NON_WORD = re.compile(r"\W+")
_MAX_TEXT = 400  # characters of a narrative line worth reading; longer ones stay context


def narrative_taps(text: str) -> list[tuple[str, tuple[float, ...], int]] | None:
    """The (name, values, sigdigits) a ``TRACE:`` narrative line states, or None when it states
    no value (a section title, prose, a formula without a result)."""
    text = text.strip()
    if not text or len(text) > _MAX_TEXT or "=" not in text:
        return None
    label = ""
    m = _LABEL.match(text)
    if m and "=" not in m.group(1):
        label, text = m.group(1), m.group(2)
    out = []
    for part in _assignments(text):
        got = _assignment(part, label)
        if got is None:
            return None
        out.append(got)
    return out or None


def _assignments(text: str) -> list[str]:
    """``V_cell = 1e+06, V_star = 1e-06`` holds two assignments; a vector's commas do not split."""
    if "[" in text or "(" in text:
        return [text]
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 1 and all(p.count("=") == 1 for p in parts):
        return parts
    return [text]


def _assignment(text: str, label: str):
    lhs, _, rhs = text.partition("=")
    name = _slug(lhs)
    if not name:
        return None
    rhs = rhs.strip()
    m = _BRACKETED.match(rhs)
    if m:  # a vector: "[x, y, z] |a| = m", "(x, y, z)"
        tokens = [t.strip() for t in m.group(1).split(",")]
    else:  # the value is what the last "=" gives: "a_star . (b_star x c_star) = 1e-06"
        last = rhs.rpartition("=")[2].strip()
        tokens = [t.strip() for t in last.split(",")]
        if len(tokens) == 1:
            words = tokens[0].split()
            # a trailing unit word ("1 Angstroms", "0.5 degrees") is not part of the value
            tokens = words[:1] if len(words) == 2 and words[1].isalpha() else words
    if not tokens or any(not t or len(t) > TOKEN_MAX for t in tokens):
        return None
    values = floats(tokens)
    if values is None:
        return None
    if label:
        name = f"{name}_{_slug(label).lower()}"
    return name, values, PRINTED_DIGITS


def _slug(text: str) -> str:
    """``a_star (raw)`` -> ``a_star_raw``; ``scaling factor`` -> ``scaling_factor``."""
    name = _NON_WORD.sub("_", text.strip()).strip("_")
    return name if name.isidentifier() and len(name) <= 80 else ""
