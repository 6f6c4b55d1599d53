"""The line reader's slow paths: every line that is not a clean numeric space-form tap.

* ``PREFIX: name value`` whose value is text (``MOSFLM``), labelled (``X:1 Y:2``), a matrix
  (``[1 0 0; 0 1 0; 0 0 1]``) or name/value runs (``h_min -24 h_max 24``), read as the ``=`` form
  reads them; ``PREFIX: name = value`` and ``PREFIX:name value`` (no space) too;
* ``PREFIX:name=value`` setup lines, ``PREFIX_PHI phi_tic=1 k=…`` and ``PREFIX_SOURCE 2: name v``
  loop lines, ``TRACE_CONFIG`` and ``=== TRACE: Pixel (s, f) ===`` pixel headers;
* ``TRACE:`` free text: the earlier port's ``TRACE: name v1 v2`` taps, the C's narrative
  crystal block (nbtrace.engine.parse.freetext), or context.

A line of a tap prefix that cannot be read (a malformed number such as ``1_00`` or ``1.2e``, a
name that is not one, a changed arity) is noted in its group's ``pending`` list: the end of the
parse reports those of the producer as not read (nbtrace.engine.parse.finish), never refuses.
"""

from __future__ import annotations

import re

from nbtrace.engine.model import KINDS, SourceLoc, TapIndex, TapRecord
from nbtrace.engine.parse.finish import CRYSTAL, FREE
from nbtrace.engine.parse.freetext import narrative_taps
from nbtrace.engine.parse.group import Group
from nbtrace.engine.parse.numbers import (EXACT, TOKEN_MAX, first_bad, floats, is_index, is_int_token, number_like,
                                          parse_eq_value, record_digits, shown)

HEADER = "TRACE_CONFIG"
INDEX_KEYS = frozenset({"source", "mos", "phi", "subpixel", "layer", "thick", "sub"})
LOOP_SUFFIX_KEYS = {"PHI": "phi_tic", "MOS": "mos_tic", "SOURCE": "source", "SRC": "source"}
PIVOT_LINE = "pivoting detector around "
PREFIX_LEN = 64  # characters: a longer "word:" is no tap prefix (and is never echoed)
_N = r"(-?[0-9]{1,18})"  # a pixel index: more digits are no pixel
_PIXEL_CONFIG = re.compile(r"\b(?:spixel|slow)\s*=\s*" + _N + r"\s*,?\s*(?:fpixel|fast)\s*=\s*" + _N)
_PIXEL_CONFIG_FS = re.compile(r"\b(?:fpixel|fast)\s*=\s*" + _N + r"\s*,?\s*(?:spixel|slow)\s*=\s*" + _N)
_PIXEL_WORDS = re.compile(r"\b(?:spixel|fpixel|slow|fast)\s*=", re.IGNORECASE)
_PIXEL_BANNER = re.compile(r"^=+\s*TRACE:?\s*Pixel\s*\(\s*" + _N + r"\s*,\s*" + _N +
                           r"\s*\)\s*(?:\[\s*(\w+)\s*,\s*(\w+)\s*\])?", re.IGNORECASE)
# linear: the mantissa's digit runs cannot trade characters, so a long token fails in one pass
_FORTRAN_EXP = re.compile(r"^([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))[dD](?=[-+]?[0-9]+$)")
_FREE_TAP = re.compile(r"^([A-Za-z_]\w*)\s*(=)?\s+(\S.*)$")
_PROSE_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_BARE_LIST = re.compile(r"^\[([^\[\]]*)\]$")
_GRID_KEY = re.compile(r"^\[[0-9, ]{1,40}\]$")  # TRACE_PY_TRICUBIC: [0,1,2]=127.9


class SlowPaths:
    """Slow paths of LineParser (a mixin: it shares the parser's state)."""

    def _slow(self, line: str, tok: str, rest: str, lineno: int) -> None:
        self.cur_raw = line
        if tok == FREE + ":":
            self._free(rest, line, lineno)
            return
        if tok == HEADER + ":":
            self._header(line, lineno)
            return
        if line.startswith("="):
            if self._banner_header(line, lineno):
                return
        colon = tok.find(":")
        if colon > 0 and colon < len(tok) - 1:
            if self._eq(line, lineno) or self._attached(line, lineno):
                return
        elif colon < 0 and rest and "_" in tok and tok.isidentifier():
            if self._loop(tok, rest, line, lineno):
                return
        if lineno <= 3 and line[:4] in ("--- ", "+++ "):
            self.diff_marks += 1  # a unified diff's header: told apart when nothing else reads
        if "\x00" in line and not self.nul_line:
            self.nul_line = lineno
        if line.startswith(PIVOT_LINE) and self.pivot is None:
            # nanoBragg says which pivot it used only in words; the spec's when: edges need it
            self.pivot = "SAMPLE" if line[len(PIVOT_LINE):].strip().startswith("sample") else "BEAM"
        self._ignored(lineno)

    def _ignored(self, lineno: int) -> None:
        self.counts["ignored_lines"] += 1

    def _pending(self, group: Group, lineno: int, what: str, hint: str, kind: str) -> None:
        group.pending.append((lineno, what, hint, kind))

    def _not_read(self, group: Group, lineno: int, what: str, hint: str, kind: str) -> None:
        """A line of ``group`` that holds no readable value: counted as ignored, and reported
        (nbtrace.engine.parse.finish) when the group turns out to be the producer's."""
        self._pending(group, lineno, what, hint, kind)
        self.unread_text[lineno] = self.cur_raw.rstrip("\r\n")
        self._ignored(lineno)

    def _arity_problem(self, group: Group, name: str, n: int, seen: tuple[int, int], lineno: int) -> None:
        """The record about to be appended changes its tap's arity: it is not kept (the engine
        compares a tap's components position by position), and the line is reported."""
        group.drop[group.lines] = lineno
        self.unread_text[lineno] = self.cur_raw.rstrip("\r\n")
        self._pending(group, lineno, f"tap {shown(name)} has {n} value(s) here but {seen[0]} at line {seen[1]}",
                      "a tap keeps its arity within a trace; check the producer prints every component",
                      "arity")

    # ------------------------------------------------------------------ space form, slowly
    def _space_slow(self, group: Group, parts: list[str], lineno: int) -> None:
        """A ``PREFIX: ...`` line that is not a clean numeric tap."""
        if not parts:
            self._ignored(lineno)
            return
        name = parts[0]
        values = parts[1:]
        if name.startswith("[") and self._bare_list(group, " ".join(parts), lineno):
            return
        if "=" in name and not values:  # PREFIX: name=value
            name, _, value = name.partition("=")
            values = value.split()
        elif values[:1] == ["="]:  # PREFIX: name = value
            values = values[1:]
        if name.endswith(":") and not values:  # a section title ("TRACE_BEAM_CENTER: SUMMARY:")
            self._context(f"{group.prefix}: {' '.join(parts)}", lineno)
            return
        if not (name.isidentifier() or _GRID_KEY.match(name)) or len(name) > 200:
            self._not_read(group, lineno, f"{shown(name)} is not a tap name",
                           "a space-form tap is 'PREFIX: name v1 [v2 v3]', the name an identifier", "name")
            return
        if not values:
            self._not_read(group, lineno, f"tap {shown(name)} has no value",
                           "a space-form tap is 'PREFIX: name v1 [v2 v3]'", "novalue")
            return
        if self._fortran_tap(group, name, values, lineno):
            return
        if self._keyed_runs(group, [name] + values, lineno):
            return
        if not self._value_tap(group, name, " ".join(values), lineno, "space"):
            bad = next((t for t in values if not floats((_fortran(t),))), values[0])
            self._not_read(group, lineno, f"tap {shown(name)} has a non-numeric value {shown(bad)}",
                           "values must be numbers (inf, -inf, nan allowed); fix the producer's printf",
                           "nonnumeric")

    def _value_tap(self, group: Group, name: str, value: str, lineno: int, dialect: str) -> bool:
        """A tap whose value is a number list, matrix, labelled list or text; False for a
        malformed number."""
        parsed = parse_eq_value(value)
        if parsed is None:
            return False
        if parsed.kind != "string":
            seen = group.arity.get(name)
            if seen is None:
                group.arity[name] = (len(parsed.values), lineno)
            elif seen[0] != len(parsed.values):
                self._arity_problem(group, name, len(parsed.values), seen, lineno)
        else:
            group.strings += 1
        self._append(group, name, parsed.values, (), lineno, parsed.sigdigits, parsed.kind, dialect,
                     text=value.strip() if parsed.kind in ("string", "matrix", "labelled") else None,
                     labels=parsed.labels, shape=parsed.shape)
        return True

    def _fortran_tap(self, group: Group, name: str, tokens: list[str], lineno: int) -> bool:
        """``1.0D+00`` exponents (Fortran producers): read them as the numbers they are."""
        if not any("d" in t or "D" in t for t in tokens) or any(len(t) > TOKEN_MAX for t in tokens):
            return False
        fixed = list(map(_fortran, tokens))
        values = floats(fixed)
        if values is None:
            return False
        seen = group.arity.get(name)
        if seen is None:
            group.arity[name] = (len(values), lineno)
        elif seen[0] != len(values):
            self._arity_problem(group, name, len(values), seen, lineno)
        self._append(group, name, values, (), lineno, record_digits(fixed), "number", "space")
        return True

    def _bare_list(self, group: Group, text: str, lineno: int) -> bool:
        """``TRACE_PY_TRICUBIC_H_COORDS: [-8.0, -7.0, -6.0]``: the prefix names the values."""
        m = _BARE_LIST.match(text)
        tokens = m.group(1).replace(",", " ").split() if m else ()
        values = floats(tokens) if tokens and all(len(t) <= TOKEN_MAX for t in tokens) else None
        if values is None:
            return False
        seen = group.arity.get("values")
        if seen is None:
            group.arity["values"] = (len(values), lineno)
        elif seen[0] != len(values):
            self._arity_problem(group, "values", len(values), seen, lineno)
        self._append(group, "values", values, (), lineno, record_digits(tokens), "number", "space")
        return True

    def _keyed_runs(self, group: Group, tokens: list[str], lineno: int) -> bool:
        """``h_min -24 h_max 24``, ``pixel 0 0 subpixel 1 0 h -7.9``: name, numbers, name, numbers."""
        runs, cur = [], None
        for tok in tokens:
            if tok.isidentifier() and not number_like(tok):
                cur = (tok, [])
                runs.append(cur)
            elif cur is not None and floats((tok,)) is not None:
                cur[1].append(tok)
            else:
                return False
        if len(runs) < 2 or any(not vals for _, vals in runs) or len({n for n, _ in runs}) != len(runs):
            return False
        if any(group.arity.get(n, (len(v),))[0] != len(v) for n, v in runs):
            return False  # a known tap with a word among its numbers: a bad value, not a run
        for name, vals in runs:
            seen = group.arity.get(name)
            if seen is None:
                group.arity[name] = (len(vals), lineno)
            elif seen[0] != len(vals):
                self._arity_problem(group, name, len(vals), seen, lineno)
            digits = record_digits(vals)
            kind = "int" if digits == EXACT and all(map(is_int_token, vals)) else "number"
            self._append(group, name, floats(vals), (), lineno, digits, kind, "space")
        return True

    # ------------------------------------------------------------------ free text
    def _free(self, rest: str, line: str, lineno: int) -> None:
        """``TRACE: name v1 v2`` / ``TRACE: name = v1 v2`` are the earlier port's taps; the C's
        narrative block (``TRACE:   a = [x, y, z] |a| = m``) gives low-precision taps; anything
        else is context."""
        # Indented TRACE: lines are steps of a narrative (the C build's "TRACE:   a = [...]");
        # only unindented "TRACE: name numbers" lines are the earlier port's taps.
        space = "space" in self.forms
        m = _FREE_TAP.match(rest) if space and rest[:1] != " " else None
        if m:
            tokens = m.group(3).split()
            values = floats(tokens)
            if values is not None:
                group = self._group(FREE)
                name = m.group(1)
                digits = record_digits(tokens)
                seen = group.arity.get(name)
                if seen is None or seen[0] == len(values):
                    group.arity.setdefault(name, (len(values), lineno))
                    kind = "int" if digits == EXACT and all(map(is_int_token, tokens)) else "number"
                    self._append(group, name, values, (), lineno, digits, kind, "free")
                    self.free_lines[lineno] = line
                    return
        # the C's crystal block is indented, or labelled ("Direct-space cell volume: V_cell = …")
        block = rest[:1] == " " or ":" in rest.partition("=")[0]
        if space and not block and self._prose(rest, line, lineno):
            return
        taps = narrative_taps(rest) if space and block else None
        if taps:
            group = self._group(CRYSTAL)
            for name, values, digits in taps:
                seen = group.arity.get(name)
                if seen is None:
                    group.arity[name] = (len(values), lineno)
                elif seen[0] != len(values):  # the same step printed with another arity: context
                    continue
                self._append(group, name, values, (), lineno, digits, "number", "free")
            if group.lines and group.last_line() == lineno:
                self.free_lines[lineno] = line
                return
        self._context(line, lineno)

    def _prose(self, rest: str, line: str, lineno: int) -> bool:
        """The earlier port's unindented prose, one value or vector a line ("TRACE: Omega (solid
        angle) = 1.59e-05", "TRACE: Position (m) = 0.1, 0, 0.006"): a tap named by its words
        (``Omega_solid_angle``; the shipped spec aliases them to the chain), at the precision it
        shows. False when the line states no single value (a title, a formula)."""
        taps = narrative_taps(rest)
        if not taps or len(taps) != 1:
            return False
        name, values, _ = taps[0]
        tokens = _PROSE_NUMBER.findall(rest.rpartition("=")[2])
        if len(tokens) != len(values):
            return False
        group = self._group(FREE)
        seen = group.arity.get(name)
        if seen is not None and seen[0] != len(values):
            return False
        group.arity.setdefault(name, (len(values), lineno))
        self._append(group, name, values, (), lineno, record_digits(tokens), "number", "free")
        self.free_lines[lineno] = line
        return True

    def _context(self, line: str, lineno: int) -> None:
        self.context.append((SourceLoc(self.path, lineno), line))

    # ------------------------------------------------------------------ = form, PREFIX:name value
    def _eq(self, line: str, lineno: int) -> bool:
        prefix, _, after = line.partition(":")
        if prefix in (FREE, HEADER) or not prefix.isidentifier() or len(prefix) > PREFIX_LEN or after[:1].isspace():
            return False
        key, eq, value = after.partition("=")
        if not eq or not (key.isidentifier() or _GRID_KEY.match(key)):
            return False
        if "eq" not in self.forms:
            return False
        group = self._group(prefix)
        if not self._value_tap(group, key, value, lineno, "eq"):
            self._not_read(group, lineno, f"tap {shown(key)} has a malformed number {shown(value.strip())}",
                           "values must be numbers as C prints them (no '1_00', no cut exponent)", "nonnumeric")
        return True

    def _attached(self, line: str, lineno: int) -> bool:
        """``TRACE_PY:F_cell 100``: a space-form tap missing its space, unambiguous when the
        prefix and the name are identifiers."""
        prefix, _, after = line.partition(":")
        if prefix in (FREE, HEADER) or not prefix.isidentifier() or len(prefix) > PREFIX_LEN \
                or "space" not in self.forms:
            return False
        parts = after.split()
        if not parts or not (parts[0].isidentifier() or parts[0].rstrip(":").isidentifier()):
            return False
        group = self._group(prefix)
        before = group.lines
        self._space_slow(group, parts, lineno)
        group.attached += group.lines - before
        return True

    # ------------------------------------------------------------------ loop lines
    def _loop(self, tok: str, rest: str, line: str, lineno: int) -> bool:
        tokens = rest.split()
        base, _, suffix = tok.rpartition("_")
        if not base:
            return False
        if tokens[0].endswith(":") and is_index(tokens[0][:-1]):
            return self._loop_indexed(base, suffix, tokens, line, lineno)
        if tokens[0].endswith(":") and tokens[0][:-1].isdigit() and "loop" in self.forms:  # "²:", 5,000 digits
            self._not_read(self._group(base), lineno, f"loop index {shown(tokens[0][:-1])} is not an integer",
                           "loop lines are 'PREFIX_SOURCE N: name value'", "index")
            return True
        pairs = [t.partition("=") for t in tokens]
        if any(not eq or not k.isidentifier() for k, eq, _ in pairs):
            return False
        index = [(k, v) for k, _, v in pairs if _is_index_key(k)]
        loop = tuple(sorted((k, int(v)) for k, v in index if is_index(v)))
        if not index or "loop" not in self.forms:
            return False
        group = self._group(base)
        if base == FREE:
            self.free_lines[lineno] = line
        if len(loop) != len(index):
            k, v = next((k, v) for k, v in index if not is_index(v))
            self._not_read(group, lineno, f"loop index {shown(k)} is not an integer: {shown(v)}",
                           "loop lines are 'PREFIX_PHI phi_tic=N key=number ...'", "index")
            return True
        index_keys = {k for k, _ in loop}
        read = 0
        for key, _, value in pairs:
            if key in index_keys:
                continue
            got = floats((value,))
            if got is None:
                self._pending(group, lineno, f"loop tap {shown(key)} has a non-numeric value {shown(value)}",
                              "loop lines are 'PREFIX_PHI phi_tic=N key=number ...'", "nonnumeric")
                continue
            digits = record_digits((value,))
            kind = "int" if digits == EXACT and is_int_token(value) else "number"
            self._append(group, key, got, loop, lineno, digits, kind, "loop")
            read += 1
        if not read:
            self._ignored(lineno)
        return True

    def _loop_indexed(self, base: str, suffix: str, tokens: list[str], line: str, lineno: int) -> bool:
        """``TRACE_PY_SOURCE 2: source_weight 1``: the index follows the loop's own prefix."""
        if len(tokens) < 3 or not tokens[1].isidentifier() or "loop" not in self.forms:
            return False
        group = self._group(base)
        if base == FREE:
            self.free_lines[lineno] = line
        loop = ((LOOP_SUFFIX_KEYS.get(suffix.upper(), suffix.lower()), int(tokens[0][:-1])),)
        values = floats(tokens[2:])
        if values is None:
            self._not_read(group, lineno, f"loop tap {shown(tokens[1])} has a non-numeric value "
                           f"{shown(first_bad(tokens[2:]))}", "values must be numbers", "nonnumeric")
            return True
        digits = record_digits(tokens[2:])
        self._append(group, tokens[1], values, loop, lineno, digits, "number", "loop")
        return True

    # ------------------------------------------------------------------ pixel headers
    def _header(self, line: str, lineno: int) -> None:
        m = _PIXEL_CONFIG.search(line)
        if m:
            self._set_pixel(int(m.group(1)), int(m.group(2)), lineno)
            return
        m = _PIXEL_CONFIG_FS.search(line)
        if m:
            self._set_pixel(int(m.group(2)), int(m.group(1)), lineno)
            return
        if _PIXEL_WORDS.search(line):  # it names a pixel this reader cannot take: say so
            self.unread.append((lineno, f"pixel header not read: {shown(line, 60)}"))
        self._context(line, lineno)

    def _banner_header(self, line: str, lineno: int) -> bool:
        m = _PIXEL_BANNER.match(line)
        if not m:
            return False
        first, second = int(m.group(1)), int(m.group(2))
        order = (m.group(3) or "slow").lower()
        if order.startswith("f") or order == "x":
            first, second = second, first
        self._set_pixel(first, second, lineno)
        return True

    def _set_pixel(self, slow: int, fast: int, lineno: int) -> None:
        self.pixel = (slow, fast)
        if self.pixel not in self.pixel_set:
            self.pixel_set.add(self.pixel)
            self.pixels.append(self.pixel)
        self.counts["header_lines"] += 1

    # ------------------------------------------------------------------ records
    def _append(self, group: Group, name: str, values, loop, lineno: int, digits: int, kind: str,
                dialect: str, *, text=None, labels=(), shape=None) -> None:
        """A record from a slow path: columns for the engine, and the whole record kept aside."""
        nid = self.name_ids.get(name)
        if nid is None:
            nid = self._new_name(name)
        pixel = self.pixel
        values = tuple(values)
        group.extras[group.lines] = TapRecord(name, values, TapIndex(pixel, loop, 0), SourceLoc(self.path, lineno),
                                              digits, kind, text, tuple(labels), dialect, None, shape)
        group.name.append(nid)
        group.ctx.append(self._ctx(pixel, loop))
        group.line.append(lineno)
        group.vals.extend(values)
        group.ends.append(group.n_values)
        group.sk.append(digits * 8 + KINDS.index(kind))


def _fortran(tok: str) -> str:
    """``1.5D+00`` -> ``1.5e+00``; other tokens (and hostile long ones) unchanged."""
    return _FORTRAN_EXP.sub(r"\1e", tok) if len(tok) <= TOKEN_MAX else tok


def _is_index_key(key: str) -> bool:
    return key.endswith("_tic") or key in INDEX_KEYS
