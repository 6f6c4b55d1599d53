"""The line dialects of instrumented builds, read in one streaming pass.

One file may mix every form (real C logs do): ``PREFIX: name v1 v2`` space taps (the hot path),
``PREFIX:name=value`` setup lines, ``PREFIX_PHI phi_tic=1 k_frac=…`` loop lines, ``TRACE_CONFIG``
pixel headers, free ``TRACE:`` text, and banners or progress lines that are counted and dropped.

Which prefix is the tap prefix is only known at the end (a file may open with junk that looks like
taps), so records are kept per prefix group and problems found on a group's lines wait in
``pending`` until the group is chosen: a malformed ``TRACE_C`` line is an error, a malformed
``WARNING:`` banner is not.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from itertools import accumulate, chain, compress, islice, repeat
from operator import itemgetter
from typing import Iterable

from nbtrace.errors import TraceError
import numpy as np

from nbtrace.model import KINDS, LazyRecords, RecordColumns, SourceLoc, TapIndex, TapRecord, Trace
from nbtrace.parse.numbers import EXACT, _digits, digits_many, first_bad, is_int_token, parse_eq_value, record_digits

FREE = "TRACE"  # free-text prefix of the C build and the earlier port
HEADER = "TRACE_CONFIG"
INDEX_KEYS = frozenset({"source", "mos", "phi", "subpixel", "layer", "thick", "sub"})
LOOP_SUFFIX_KEYS = {"PHI": "phi_tic", "MOS": "mos_tic", "SOURCE": "source", "SRC": "source"}
MIN_COMPETING = 3  # tap lines a second prefix needs before a file counts as mixing two producers
FORMS = ("space", "eq", "loop")
CHUNK = 2048  # lines per bulk attempt: large enough to amortise, small enough that a fallback is cheap

_PIXEL_CONFIG = re.compile(r"\b(?:spixel|slow)\s*=\s*(-?\d+)\s*,?\s*(?:fpixel|fast)\s*=\s*(-?\d+)")
_PIXEL_CONFIG_FS = re.compile(r"\b(?:fpixel|fast)\s*=\s*(-?\d+)\s*,?\s*(?:spixel|slow)\s*=\s*(-?\d+)")
_PIXEL_BANNER = re.compile(r"^=+\s*TRACE:?\s*Pixel\s*\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)\s*(?:\[\s*(\w+)\s*,\s*(\w+)\s*\])?",
                           re.IGNORECASE)
_FORTRAN_EXP = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+))[dD](?=[-+]?\d+$)")
_FREE_TAP = re.compile(r"^([A-Za-z_]\w*)\s*(=)?\s+(\S.*)$")

# sigdigits and the kind code share one column entry (sigdigits * 8 + kind)
assert len(KINDS) <= 8


class _Group:
    """Records and bookkeeping of one prefix (e.g. every TRACE_C line of a file), kept as
    columns (one list per field) so a million-line log makes no million objects."""

    __slots__ = ("prefix", "name", "ctx", "occurrence", "line", "ends", "sk", "vals", "extras",
                 "occ", "arity", "pending")

    def __init__(self, prefix: str):
        self.prefix = prefix
        # typed arrays, not lists: 8 bytes an entry instead of a pointer plus an int object
        self.name = array("q")  # name code per record
        self.ctx = array("q")  # (pixel, loop) code per record
        self.occurrence = array("q")
        self.line = array("q")
        self.ends = array("q")  # end offset of each record's components in vals
        self.sk = array("q")  # sigdigits * 8 + kind code
        self.vals = array("d")
        self.extras: dict[int, TapRecord] = {}  # position -> record not described by the columns
        self.occ: dict[tuple, dict[str, int]] = {}  # (pixel, loop) -> name -> records so far
        self.arity: dict[str, tuple[int, int]] = {}  # name -> (number of values, first line)
        self.pending: list[tuple[int, str, str, str]] = []  # (line, what, hint, kind)

    @property
    def lines(self) -> int:
        return len(self.name)

    def occ_for(self, pixel, loop) -> dict[str, int]:
        got = self.occ.get((pixel, loop))
        if got is None:
            got = self.occ[(pixel, loop)] = {}
        return got


class LineParser:
    """Feed it lines (with their newlines); ``finish()`` returns the Trace."""

    def __init__(self, path: str, dialect: str = "auto", prefix: str | None = None):
        self.path = path
        self.forms = frozenset(FORMS) if dialect in (None, "auto") else frozenset({dialect})
        self.want_prefix = prefix
        self.groups: dict[str, _Group] = {}
        self.pixel: tuple[int, int] | None = None
        self.pixels: list[tuple[int, int]] = []
        self.pixel_set: set[tuple[int, int]] = set()
        self.context: list[tuple[SourceLoc, str]] = []
        self.free_lines: dict[int, str] = {}
        self.counts = Counter()
        self.warnings: list[str] = []
        self.name_ids: dict[str, int] = {}
        self.name_list: list[str] = []
        self.ctx_ids: dict[tuple, int] = {}
        self.ctx_list: list[tuple] = []
        self.last_line = 0
        self.last_raw = ""
        self.nul_line = 0

    # ------------------------------------------------------------------ the streaming loop
    def feed(self, lines: Iterable[str]) -> None:
        """Parse ``lines``, a chunk at a time: a chunk of nothing but clean space-form taps of one
        known prefix and pixel headers (the bulk of a large log) is read with whole-chunk C-level
        map/zip calls; any other chunk goes through the line-by-line reader, which handles
        everything. Both give identical records, counts and errors."""
        it = iter(lines)
        bulk_ok = "space" in self.forms
        while True:
            chunk = list(islice(it, CHUNK))
            if not chunk:
                return
            if not (bulk_ok and self._bulk(chunk)):
                self._feed_lines(chunk)

    def _feed_lines(self, lines: Iterable[str]) -> None:
        """Parse ``lines`` one by one; the space-form tap is the hot path."""
        space_ok = "space" in self.forms
        name_ids = self.name_ids
        prefix_ok: dict[str, _Group | None] = {}
        lineno = self.last_line
        raw = self.last_raw
        blank = 0
        # Per (group, pixel) state, refreshed whenever either changes: the occurrence counters
        # and the group's column appenders (bound methods, looked up once per pixel, not per line).
        cur_group = cur_pixel = None
        occ: dict[str, int] = {}
        arity: dict[str, tuple[int, int]] = {}
        vals = array("d")
        ctx = 0
        pixel = self.pixel
        for raw in lines:
            lineno += 1
            parts = raw.split()
            if not parts:
                blank += 1
                continue
            tok = parts[0]
            # A tap line starts at column 0 ("  Mean: 12.9" in a banner is not a tap).
            if space_ok and tok[-1] == ":" and raw[0] == tok[0]:
                group = prefix_ok.get(tok)
                if group is None and tok not in prefix_ok:
                    group = prefix_ok[tok] = self._space_group(tok[:-1])
                if group is not None:
                    toks = parts[2:]
                    if toks and parts[1].isidentifier():
                        if group is not cur_group or pixel is not cur_pixel:
                            cur_group, cur_pixel = group, pixel
                            occ = group.occ_for(pixel, ())
                            arity = group.arity
                            vals = group.vals
                            ctx = self._ctx(pixel, ())
                            add_name, add_ctx, add_occ = group.name.append, group.ctx.append, group.occurrence.append
                            add_line, add_end, add_sk = group.line.append, group.ends.append, group.sk.append
                        start = len(vals)
                        try:
                            vals.extend(map(float, toks))
                        except ValueError:
                            del vals[start:]  # a partly converted line leaves nothing behind
                        else:
                            name = parts[1]
                            nid = name_ids.get(name)
                            if nid is None:
                                nid = self._new_name(name)
                            n = occ.get(name, 0)
                            occ[name] = n + 1
                            nv = len(toks)
                            seen = arity.get(name)
                            if seen is None:
                                arity[name] = (nv, lineno)
                            elif seen[0] != nv:
                                self._arity_problem(group, name, nv, seen, lineno)
                            if nv == 1:
                                # _digits inlined for the common plain decimal scalar (no call
                                # per line); exponents, zeros and multi-value lines take _digits
                                t = toks[0]
                                d = t.lstrip("+-0.")
                                if not d or "e" in d or "E" in d:
                                    digits = _digits(t)
                                elif "." in t:
                                    digits = len(d) - ("." in d)
                                else:
                                    digits = 0
                            else:
                                digits = max(map(_digits, toks))
                            if digits:
                                sk = digits * 8  # kind "number"
                            else:
                                sk = EXACT * 8 + (1 if all(map(is_int_token, toks)) else 0)
                            add_name(nid)
                            add_ctx(ctx)
                            add_occ(n)
                            add_line(lineno)
                            add_end(start + nv)
                            add_sk(sk)
                            continue
                    self._space_slow(group, parts[1:], lineno)
                    continue
            line = raw.rstrip()
            tok, _, rest = line.partition(" ")
            self._slow(line, tok, rest, lineno)
            pixel = self.pixel  # only the slow path (a pixel header) moves it
        self.counts["blank_lines"] += blank
        self.last_line = lineno
        self.last_raw = raw

    # ------------------------------------------------------------------ the bulk path
    def _bulk(self, chunk: list[str]) -> bool:
        """Read a chunk of clean taps and headers in bulk; False (nothing changed) when the chunk
        holds anything else, or anything that needs a per-line decision (a new prefix or name,
        an arity change, a bad value, a repeated name within a pixel)."""
        parts = list(map(str.split, chunk))
        if not all(parts) or any(map(str.isspace, map(itemgetter(0), chunk))):
            return False  # blank or indented lines
        first = list(map(itemgetter(0), parts))
        kinds = set(first)
        kinds.discard(HEADER + ":")
        if len(kinds) != 1:
            return False
        group = self.groups.get(next(iter(kinds))[:-1])
        if group is None or group.prefix in (FREE, HEADER) or not group.name:
            return False  # let the line reader meet a prefix first
        is_tap = list(map((HEADER + ":").__ne__, first))
        taps = list(compress(parts, is_tap))
        if not taps or min(map(len, taps)) < 3:
            return False
        names = list(map(itemgetter(1), taps))
        tokens = list(map(itemgetter(slice(2, None)), taps))
        nvs = list(map(len, tokens))
        arity = group.arity
        for name, nv in set(zip(names, nvs)):
            seen = arity.get(name)
            if seen is None or seen[0] != nv:
                return False  # a new name (its first line is recorded) or an arity problem
        flat = list(chain.from_iterable(tokens))
        try:
            values = list(map(float, flat))
        except ValueError:
            return False
        pixels = self._bulk_pixels(chunk, is_tap)
        if pixels is None:
            return False
        self._bulk_commit(group, chunk, is_tap, names, nvs, flat, values, *pixels)
        return True

    def _bulk_pixels(self, chunk: list[str], is_tap: list[bool]):
        """(start, end, pixel) of each run of taps between headers and (position, pixel) of each
        header, or None if a header is not a plain pixel header (the line reader handles those)."""
        runs = []
        headers = []
        pixel = self.pixel
        start = 0
        n_tap = 0
        for i in [i for i, t in enumerate(is_tap) if not t]:
            m = _PIXEL_CONFIG.search(chunk[i])  # the pattern _header tries first
            if m is None:
                return None
            k = n_tap + (i - start)  # taps before this header
            runs.append((n_tap, k, pixel))
            pixel = (int(m.group(1)), int(m.group(2)))
            headers.append((i, pixel))
            n_tap, start = k, i + 1
        runs.append((n_tap, n_tap + len(chunk) - start, pixel))
        return runs, headers

    def _bulk_commit(self, group: _Group, chunk, is_tap, names, nvs, flat, values, runs, headers) -> None:
        lineno = self.last_line
        for i, (slow, fast) in headers:
            self._set_pixel(slow, fast, lineno + i + 1)
        lines = compress(range(lineno + 1, lineno + 1 + len(chunk)), is_tap)
        for a, b, pixel in runs:
            if a == b:
                continue
            occ = group.occ_for(pixel, ())
            seg = names[a:b]
            ctx = self._ctx(pixel, ())
            if not occ and len(set(seg)) == len(seg):
                occ.update(zip(seg, repeat(1)))
                group.occurrence.extend(repeat(0, len(seg)))
            else:
                out = []
                for name in seg:
                    n = occ.get(name, 0)
                    occ[name] = n + 1
                    out.append(n)
                group.occurrence.extend(out)
            group.ctx.extend(repeat(ctx, len(seg)))
        group.name.extend(map(self.name_ids.__getitem__, names))
        group.line.extend(lines)
        base = len(group.vals)
        group.vals.extend(values)
        ends = list(accumulate(nvs, initial=base))[1:]
        group.ends.extend(ends)
        group.sk.frombytes(_bulk_sk(flat, nvs, ends, base).tobytes())
        self.last_line = lineno + len(chunk)
        self.last_raw = chunk[-1]

    def _new_name(self, name: str) -> int:
        nid = self.name_ids[name] = len(self.name_list)
        self.name_list.append(name)
        return nid

    def _ctx(self, pixel, loop) -> int:
        """The code of a (pixel, loop) context, shared by every group."""
        key = (pixel, loop)
        got = self.ctx_ids.get(key)
        if got is None:
            got = self.ctx_ids[key] = len(self.ctx_list)
            self.ctx_list.append(key)
        return got

    def _space_group(self, prefix: str) -> _Group | None:
        """The group of a ``PREFIX:`` token, or None when it is not a tap prefix (free text, header)."""
        if prefix in (FREE, HEADER) or not prefix.isidentifier():
            return None
        return self._group(prefix)

    def _group(self, prefix: str) -> _Group:
        group = self.groups.get(prefix)
        if group is None:
            group = self.groups[prefix] = _Group(prefix)
        return group

    # ------------------------------------------------------------------ slow paths
    def _space_slow(self, group: _Group, parts: list[str], lineno: int) -> None:
        """A ``PREFIX: ...`` line that is not a clean numeric tap."""
        if not parts or not parts[0].isidentifier():
            self._ignored(lineno)
            return
        name = parts[0]
        if len(parts) > 1 and self._fortran_tap(group, name, parts[1:], lineno):
            return
        if len(parts) == 1:
            self._pending(group, lineno, f"tap {name!r} has no value",
                          "a space-form tap is 'PREFIX: name v1 [v2 v3]'", "novalue")
        else:
            fixed = [_FORTRAN_EXP.sub(r"\1e", t) for t in parts[1:]]
            bad = parts[1:][fixed.index(first_bad(fixed))]
            self._pending(group, lineno, f"tap {name!r} has a non-numeric value {bad!r}",
                          "values must be numbers (inf, -inf, nan allowed); fix the producer's printf",
                          "nonnumeric")
        self._ignored(lineno)

    def _fortran_tap(self, group: _Group, name: str, tokens: list[str], lineno: int) -> bool:
        """``1.0D+00`` exponents (Fortran producers): read them as the numbers they are."""
        fixed = [_FORTRAN_EXP.sub(r"\1e", t) for t in tokens]
        values = _floats(fixed)
        if values is None:
            return False
        seen = group.arity.get(name)
        if seen is None:
            group.arity[name] = (len(values), lineno)
        elif seen[0] != len(values):
            self._arity_problem(group, name, len(values), seen, lineno)
        self._append(group, name, values, (), lineno, record_digits(fixed), "number", "space")
        return True

    def _slow(self, line: str, tok: str, rest: str, lineno: int) -> None:
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
            if self._eq(line, lineno):
                return
        elif colon < 0 and rest and "_" in tok and tok.isidentifier():
            if self._loop(tok, rest, lineno):
                return
        if "\x00" in line and not self.nul_line:
            self.nul_line = lineno
        self._ignored(lineno)

    def _ignored(self, lineno: int) -> None:
        self.counts["ignored_lines"] += 1

    def _pending(self, group: _Group, lineno: int, what: str, hint: str, kind: str) -> None:
        group.pending.append((lineno, what, hint, kind))

    def _arity_problem(self, group: _Group, name: str, n: int, seen: tuple[int, int], lineno: int) -> None:
        self._pending(group, lineno, f"tap {name!r} has {n} value(s) here but {seen[0]} at line {seen[1]}",
                      "a tap keeps its arity within a trace; check the producer prints every component",
                      "arity")

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

    # ------------------------------------------------------------------ free text
    def _free(self, rest: str, line: str, lineno: int) -> None:
        """``TRACE: name v1 v2`` / ``TRACE: name = v1 v2`` are taps; anything else is context."""
        # Indented TRACE: lines are steps of a narrative (the C build's "TRACE:   a = [...]");
        # only unindented "TRACE: name numbers" lines are the earlier port's taps.
        m = _FREE_TAP.match(rest) if "space" in self.forms and rest[:1] != " " else None
        if m:
            tokens = m.group(3).split()
            values = _floats(tokens)
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
        self._context(line, lineno)

    def _context(self, line: str, lineno: int) -> None:
        self.context.append((SourceLoc(self.path, lineno), line))

    # ------------------------------------------------------------------ = form
    def _eq(self, line: str, lineno: int) -> bool:
        prefix, _, after = line.partition(":")
        if prefix in (FREE, HEADER) or not prefix.isidentifier() or after[:1].isspace():
            return False
        key, eq, value = after.partition("=")
        if not eq or not key.isidentifier():
            return False
        if "eq" not in self.forms:
            return False
        parsed = parse_eq_value(value)
        group = self._group(prefix)
        if parsed.kind != "string":
            seen = group.arity.get(key)
            if seen is None:
                group.arity[key] = (len(parsed.values), lineno)
            elif seen[0] != len(parsed.values):
                self._arity_problem(group, key, len(parsed.values), seen, lineno)
        self._append(group, key, parsed.values, (), lineno, parsed.sigdigits, parsed.kind, "eq",
                     text=value if parsed.kind in ("string", "matrix", "labelled") else None,
                     labels=parsed.labels, shape=parsed.shape)
        return True

    # ------------------------------------------------------------------ loop lines
    def _loop(self, tok: str, rest: str, lineno: int) -> bool:
        tokens = rest.split()
        base, _, suffix = tok.rpartition("_")
        if not base:
            return False
        if tokens[0].endswith(":") and is_int_token(tokens[0][:-1]):
            return self._loop_indexed(base, suffix, tokens, lineno)
        pairs = [t.partition("=") for t in tokens]
        if any(not eq or not k.isidentifier() for k, eq, _ in pairs):
            return False
        loop = tuple(sorted((k, int(v)) for k, _, v in pairs if _is_index_key(k) and is_int_token(v)))
        if not loop:
            return False
        if "loop" not in self.forms:
            return False
        group = self._group(base)
        index_keys = {k for k, _ in loop}
        for key, _, value in pairs:
            if key in index_keys:
                continue
            try:
                number = float(value)
            except ValueError:
                self._pending(group, lineno, f"loop tap {key!r} has a non-numeric value {value!r}",
                              "loop lines are 'PREFIX_PHI phi_tic=N key=number ...'", "nonnumeric")
                continue
            digits = record_digits((value,))
            kind = "int" if digits == EXACT and is_int_token(value) else "number"
            self._append(group, key, (number,), loop, lineno, digits, kind, "loop")
        return True

    def _loop_indexed(self, base: str, suffix: str, tokens: list[str], lineno: int) -> bool:
        """``TRACE_PY_SOURCE 2: source_weight 1``: the index follows the loop's own prefix."""
        if len(tokens) < 3 or not tokens[1].isidentifier() or "loop" not in self.forms:
            return False
        group = self._group(base)
        loop = ((LOOP_SUFFIX_KEYS.get(suffix.upper(), suffix.lower()), int(tokens[0][:-1])),)
        values = _floats(tokens[2:])
        if values is None:
            self._pending(group, lineno, f"loop tap {tokens[1]!r} has a non-numeric value "
                          f"{first_bad(tokens[2:])!r}", "values must be numbers", "nonnumeric")
            return True
        digits = record_digits(tokens[2:])
        self._append(group, tokens[1], values, loop, lineno, digits, "number", "loop")
        return True

    # ------------------------------------------------------------------ records
    def _append(self, group: _Group, name: str, values, loop, lineno: int, digits: int, kind: str,
                dialect: str, *, text=None, labels=(), shape=None) -> None:
        """A record from a slow path: columns for the engine, and the whole record kept aside."""
        nid = self.name_ids.get(name)
        if nid is None:
            nid = self._new_name(name)
        pixel = self.pixel
        occ = group.occ_for(pixel, loop)
        n = occ.get(name, 0)
        occ[name] = n + 1
        values = tuple(values)
        group.extras[len(group.name)] = TapRecord(name, values, TapIndex(pixel, loop, n), SourceLoc(self.path, lineno),
                                                  digits, kind, text, tuple(labels), dialect, None, shape)
        group.name.append(nid)
        group.ctx.append(self._ctx(pixel, loop))
        group.occurrence.append(n)
        group.line.append(lineno)
        group.vals.extend(values)
        group.ends.append(len(group.vals))
        group.sk.append(digits * 8 + KINDS.index(kind))

    # ------------------------------------------------------------------ the end
    def finish(self, *, ends_with_newline: bool, tried: str) -> Trace:
        if self.nul_line:
            raise TraceError("binary content (NUL byte)", f"{self.path}:{self.nul_line}",
                             "this is not a text trace; give the producer's stdout log")
        chosen = self._choose(tried)
        self._check_pending(chosen, ends_with_newline)
        if not ends_with_newline and self.last_line and chosen.line and chosen.line[-1] == self.last_line:
            self.warnings.append(f"{self.path}:{self.last_line}: the last line has no newline; "
                                 "the trace may be truncated (the value was kept as printed)")
        self._drop_others(chosen)
        return self._trace(chosen)

    def _choose(self, tried: str) -> _Group:
        groups = {p: g for p, g in self.groups.items() if g.name}
        if self.want_prefix is not None:
            g = groups.get(self.want_prefix)
            if g is None:
                seen = ", ".join(sorted(groups)) or "none"
                raise TraceError(f"no taps with prefix {self.want_prefix!r}", self.path,
                                 f"prefixes with taps in this file: {seen}")
            return g
        if not groups:
            raise self._nothing_found(tried)
        real = {p: g for p, g in groups.items() if p != FREE}
        if not real:
            return groups[FREE]
        ranked = sorted(real.values(), key=lambda g: -g.lines)
        competing = [g for g in ranked if g.lines >= MIN_COMPETING]
        if len(competing) >= 2:
            a, b = competing[0], competing[1]
            first_b = min(b.line)
            raise TraceError(
                f"the file mixes two tap prefixes, {a.prefix} ({a.lines} taps) and {b.prefix} "
                f"({b.lines} taps, the first here)", f"{self.path}:{first_b}",
                f"split the log per producer (grep '^{a.prefix}[:_ ]'), or select one with "
                f"prefix={a.prefix!r} (Python) / --prefix-a and --prefix-b, one of {a.prefix}, {b.prefix} each "
                f"(nbtrace diff) / --prefix {a.prefix} (nbtrace taps init)")
        return ranked[0]

    def _nothing_found(self, tried: str) -> TraceError:
        candidates = [(ln, what) for g in self.groups.values() for ln, what, _, _ in g.pending]
        hint = f"dialects tried: {tried}; a tap line looks like 'TRACE_C: name 1.5 2.5'"
        if candidates:
            ln, what = min(candidates)
            hint += f"; the nearest candidate, line {ln}: {what}"
        return TraceError("no trace lines found", self.path, hint)

    def _check_pending(self, chosen: _Group, ends_with_newline: bool) -> None:
        for lineno, what, hint, kind in chosen.pending:
            if lineno == self.last_line and not ends_with_newline:
                if kind == "arity":
                    self.warnings.append(f"{self.path}:{lineno}: {what}; the file ends without a newline, "
                                         "so the last line looks truncated")
                    continue
                raise TraceError(f"the file ends mid-line: {what}", f"{self.path}:{lineno}",
                                 "the trace looks truncated; rerun the producer or drop the partial last line")
            raise TraceError(what, f"{self.path}:{lineno}", hint)

    def _drop_others(self, chosen: _Group) -> None:
        """Records of other prefixes become context (free text) or ignored lines (stray prefixes)."""
        for prefix, group in self.groups.items():
            if group is chosen or not group.name:
                continue
            if prefix == FREE:
                self.context.extend((SourceLoc(self.path, ln), self.free_lines[ln]) for ln in group.line)
                continue
            lines = set(group.line)
            self.counts["ignored_lines"] += len(lines)
            self.warnings.append(f"{self.path}: {len(lines)} line(s) with prefix {prefix!r} ignored "
                                 f"(the taps are {chosen.prefix!r}; first at line {min(lines)})")

    def _trace(self, chosen: _Group) -> Trace:
        self.context.sort(key=lambda c: c[0].line)
        columns = self._columns(chosen)
        dialects, digits = _dialect_digits(columns, chosen.extras)
        meta = {
            "lines": self.last_line,
            "blank_lines": self.counts["blank_lines"],
            "ignored_lines": self.counts["ignored_lines"],
            "context_lines": len(self.context),
            "header_lines": self.counts["header_lines"],
            "warnings": self.warnings,
            "dialects": dialects,
            "format_digits": digits,
            "prefixes": {p: g.lines for p, g in self.groups.items() if g.lines},
        }
        dialect = next(iter(dialects)) if len(dialects) == 1 else ("mixed" if dialects else "space")
        return Trace(path=self.path, records=LazyRecords(columns, self.path, chosen.extras), prefix=chosen.prefix,
                     dialect=dialect, pixels=tuple(self.pixels), context=tuple(self.context), meta=meta)

    def _columns(self, g: _Group) -> RecordColumns:
        """The group's columns as numpy arrays viewing the typed arrays (no copy: the parser is
        done with them), read-only like the records they describe."""
        def view(xs: array, dtype=np.int64) -> np.ndarray:
            out = np.frombuffer(xs, dtype=dtype)
            out.flags.writeable = False
            return out

        sk = view(g.sk)
        offsets = np.zeros(len(g.ends) + 1, dtype=np.int64)
        offsets[1:] = view(g.ends)
        derived = [offsets, sk >> 3, sk & 7]
        for a in derived:
            a.flags.writeable = False
        return RecordColumns(tuple(self.name_list), view(g.name), tuple(self.ctx_list), view(g.ctx),
                             view(g.occurrence), view(g.line), offsets, view(g.vals, np.float64),
                             derived[1], derived[2])


def _dialect_digits(columns: RecordColumns, extras: dict[int, TapRecord]) -> tuple[dict, dict]:
    """Records per dialect (in order of first appearance) and the most digits each dialect shows."""
    first: dict[str, int] = {}
    counts: Counter = Counter()
    digits: dict[str, int] = {}
    for pos, r in sorted(extras.items()):
        first.setdefault(r.dialect, pos)
        counts[r.dialect] += 1
        if r.sigdigits != EXACT and r.sigdigits > digits.get(r.dialect, 0):
            digits[r.dialect] = r.sigdigits
    n_space = len(columns) - len(extras)
    if n_space:
        plain = np.ones(len(columns), dtype=bool)
        plain[list(extras)] = False
        first_plain = int(np.argmax(plain))
        counts["space"] += n_space
        first["space"] = min(first.get("space", first_plain), first_plain)
        sig = columns.sigdigits[plain]
        sig = sig[sig != EXACT]
        if sig.size:
            digits["space"] = max(digits.get("space", 0), int(sig.max()))
    dialects = {d: counts[d] for d in sorted(first, key=first.__getitem__)}
    return dialects, digits


def _bulk_sk(flat: list[str], nvs: list[int], ends: list[int], base: int) -> np.ndarray:
    """sigdigits * 8 + kind of each record, from its tokens (the rule of the line reader)."""
    digits = digits_many(flat)
    if max(nvs) == 1:
        per = digits
    else:
        per = np.maximum.reduceat(digits, np.asarray(ends, dtype=np.int64) - base - np.asarray(nvs))
    out = per.astype(np.int64) * 8
    if not per.all():
        for i in np.flatnonzero(per == 0).tolist():
            toks = flat[ends[i] - base - nvs[i]:ends[i] - base]
            out[i] = EXACT * 8 + (1 if all(map(is_int_token, toks)) else 0)
    return out


def _is_index_key(key: str) -> bool:
    return key.endswith("_tic") or key in INDEX_KEYS


def _floats(tokens):
    try:
        return tuple(map(float, tokens))
    except ValueError:
        return None
