"""The line dialects of instrumented builds, read in one streaming pass.

One file may mix every form (real C logs do): ``PREFIX: name v1 v2`` space taps (the hot path),
``PREFIX:name=value`` setup lines, ``PREFIX_PHI phi_tic=1 k_frac=…`` loop lines, ``TRACE_CONFIG``
pixel headers, free ``TRACE:`` text, and banners or progress lines that are counted and dropped.

Which prefix is the tap prefix is only known at the end (a file may open with junk that looks like
taps), so records are kept per prefix group and problems found on a group's lines wait in
``pending`` until the group is chosen: a malformed ``TRACE_C`` line is reported as not read (and
kept as context), a malformed ``WARNING:`` banner is only counted. The slow paths live in
nbtrace.engine.parse.slow, the choice of the producer and its families (and the Trace built
from them) in nbtrace.engine.parse.finish, the column store in nbtrace.engine.parse.group.

Two readers share that state. The line reader (``_feed_lines``) handles every line. Files and
strings arrive as bytes (``feed_raw``): nbtrace.engine.parse.blocks sorts each block's lines with numpy,
and runs of lines that need no judgement (clean taps of one prefix, pixel headers, empty lines)
are read in bulk (``_bulk_run``: one split and one ``float`` map per run, digits counted with
numpy), the rest by the line reader, in file order. Both give the same records, counts and
errors (tests/nbtrace/test_parse_bulk.py compares them on generated odd logs). Occurrences are
counted once at the end, over the columns, for both.
"""

from __future__ import annotations

import codecs
import io
from array import array
from collections import Counter
from itertools import islice
from typing import Iterable

import numpy as np

from nbtrace.engine.model import KINDS, SourceLoc, first_positions
from nbtrace.engine.parse import blocks
from nbtrace.engine.parse.finish import FREE, Finisher
from nbtrace.engine.parse.group import Group, Prepended, lone_cr, occurrences  # noqa: F401 (occurrences: API)
from nbtrace.engine.parse.numbers import EXACT, TOKEN_MAX, _digits, is_int_token, is_number
from nbtrace.engine.parse.slow import HEADER, PREFIX_LEN, SlowPaths

FORMS = ("space", "eq", "loop")
CHUNK = 2048  # lines per call of the line reader when it reads a text stream
BLOCK_BYTES = 1 << 22  # bytes per block of the bulk reader: bounds its memory, amortises numpy calls
MIN_RUN = 64  # lines in a row the bulk reader must be able to take before it is worth a call
MAX_LINE = 1 << 22  # bytes (characters) of one line: longer ones are not read (a hostile file)

# sigdigits and the kind code share one column entry (sigdigits * 8 + kind)
assert len(KINDS) <= 8


class LineParser(SlowPaths, Finisher):
    """Feed it lines (with their newlines); ``finish()`` returns the Trace."""

    def __init__(self, path: str, dialect: str = "auto", prefix: str | None = None):
        self.path = path
        self.forms = frozenset(FORMS) if dialect in (None, "auto") else frozenset({dialect})
        self.want_prefix = prefix
        self.groups: dict[str, Group] = {}
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
        self.cur_raw = ""  # the line the slow paths are reading (kept as context when not read)
        self.unread_text: dict[int, str] = {}  # line -> text of a line not read
        self.diff_marks = 0  # "--- a" / "+++ b" header lines of a unified diff
        self.unread: list[tuple[int, str]] = []  # lines of no group that could not be read
        self.pivot: str | None = None  # from nanoBragg's "pivoting detector around ..." line

    # ------------------------------------------------------------------ the streaming loop
    def feed(self, lines: Iterable[str]) -> None:
        """Parse ``lines`` (text with their newlines) with the line reader, a chunk at a time."""
        it = iter(lines)
        while True:
            chunk = list(islice(it, CHUNK))
            if not chunk:
                return
            self._feed_lines(chunk)

    def feed_raw(self, raw) -> None:
        """Parse a binary stream of UTF-8 text (a leading BOM is dropped), as ``feed`` would parse
        it decoded with universal newlines.

        Blocks of BLOCK_BYTES, cut after their last newline, are sorted line by line with numpy
        (nbtrace.engine.parse.blocks); runs of at least MIN_RUN lines the bulk reader can take (clean
        taps of one prefix, pixel headers, empty lines) are read in one go, everything else goes
        through the line reader, in file order, so both share one state. A carriage return
        that does not end a line with "\n" hands the rest of the stream to ``feed`` (such a
        carriage return is a line break of its own); "\r\n" line ends are read in bulk.
        """
        carry = b""
        first = True
        skipping = False  # inside a line longer than MAX_LINE: dropped up to its newline
        while True:
            chunk = raw.read(BLOCK_BYTES)
            if first:
                first = False
                if chunk.startswith(codecs.BOM_UTF8):
                    chunk = chunk[len(codecs.BOM_UTF8):]
            if skipping and chunk:
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue
                self._long_line(ended=True)
                skipping = False
                chunk = chunk[nl + 1:]
                if not chunk:
                    continue
            if not chunk:
                if skipping:
                    self._long_line(ended=False)
                    return
                if lone_cr(carry, len(carry)):
                    self._feed_text(carry, raw)
                elif carry:
                    self._feed_block(carry + blocks.PAD, len(carry))
                return
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                # a line longer than a block: gather its pieces in one growing buffer (bytes + bytes
                # would copy the whole line again for every block: quadratic on a hostile line)
                carry = carry + chunk if len(carry) < BLOCK_BYTES else _grow(carry, chunk)
                if len(carry) > MAX_LINE:
                    if b"\r" in carry:  # old Mac line ends: lines after all, for the line reader
                        self._feed_text(bytes(carry), raw)
                        return
                    carry, skipping = b"", True
                continue
            block = b"".join((carry, chunk[:cut], blocks.PAD))
            size = len(carry) + cut
            carry = chunk[cut:]
            if lone_cr(block, size) or b"\r" in carry[:-1]:
                self._feed_text(block[:size] + carry, raw)
                return
            self._feed_block(block, size)

    def _long_line(self, ended: bool) -> None:
        """A line over MAX_LINE bytes (no tap is that long; splitting it would cost gigabytes):
        counted, reported as not read, never split."""
        self.last_line += 1
        self.counts["ignored_lines"] += 1
        self.unread.append((self.last_line, f"a line of more than {MAX_LINE >> 20} MB"))
        self.last_raw = "\n" if ended else "…"

    def _feed_text(self, head: bytes, raw) -> None:
        """The rest of the stream (``head``, then ``raw``) through the line reader."""
        stream = io.TextIOWrapper(io.BufferedReader(Prepended(head, raw)), encoding="utf-8", newline=None)
        self.feed(stream)

    def _feed_block(self, data: bytes, size: int) -> None:
        """The lines of ``data[:size]`` (``data`` ends with blocks.PAD), in order."""
        lines = blocks.scan(data, size, self._tap_prefix_ok)
        kind = lines.kind
        n = len(kind)
        other = kind == blocks.OTHER
        brk = np.zeros(n + 1, dtype=bool)
        brk[0] = brk[n] = True
        brk[1:n] = other[1:] != other[:-1]
        taps = np.flatnonzero(kind == blocks.TAP)
        if taps.size > 1:  # a new prefix starts a new run
            brk[taps[1:][lines.prefix[taps[1:]] != lines.prefix[taps[:-1]]]] = True
        cuts = np.flatnonzero(brk).tolist()
        pending = None  # a range of lines waiting for the line reader
        base = self.last_line
        for a, b in zip(cuts[:-1], cuts[1:]):
            if not other[a] and b - a >= MIN_RUN:
                if pending is not None:
                    self._line_range(lines, size, *pending)
                    pending = None
                if self._bulk_run(lines, base, a, b):
                    continue
            pending = (pending[0] if pending is not None else a, b)
        if pending is not None:
            self._line_range(lines, size, *pending)

    def _line_range(self, lines, size: int, a: int, b: int) -> None:
        """Lines a..b-1 of a block through the line reader."""
        text = lines.data[int(lines.starts[a]):int(lines.stops[b - 1])].decode("utf-8")
        if "\r" in text:  # only in "\r\n" line ends here: universal newlines make them "\n"
            text = text.replace("\r\n", "\n")
        parts = text.split("\n")
        last = parts.pop()
        out = [p + "\n" for p in parts]
        if last:
            out.append(last)
        self._feed_lines(out)

    def _tap_prefix_ok(self, prefix: str) -> bool:
        return prefix not in (FREE, HEADER) and prefix.isidentifier() and len(prefix) <= PREFIX_LEN

    def _feed_lines(self, lines: Iterable[str]) -> None:
        """Parse ``lines`` one by one; the space-form tap is the hot path."""
        space_ok = "space" in self.forms
        name_ids = self.name_ids
        prefix_ok: dict[str, Group | None] = {}
        lineno = self.last_line
        raw = self.last_raw
        blank = 0
        # Per (group, pixel) state, refreshed whenever either changes: the group's column
        # appenders (bound methods, looked up once per pixel, not per line). Occurrences are
        # counted at the end, over the columns.
        cur_group = cur_pixel = None
        arity: dict[str, tuple[int, int]] = {}
        vals = array("d")
        ctx = 0
        pixel = self.pixel
        for raw in lines:
            lineno += 1
            if len(raw) > MAX_LINE:
                self.last_line = lineno - 1
                self._long_line(ended=raw.endswith("\n"))
                continue
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
                            arity = group.arity
                            vals = group.vals
                            v0 = group.v_sealed  # ends count every value of the group
                            ctx = self._ctx(pixel, ())
                            add_name, add_ctx = group.name.append, group.ctx.append
                            add_line, add_end, add_sk = group.line.append, group.ends.append, group.sk.append
                        start = len(vals)
                        try:
                            vals.extend(map(float, toks))
                            # float() also takes "1_00" and non-ASCII digits, which no C prints:
                            # such a line takes the slow path (names may hold "_" and any letter)
                            if (raw.count("_") != tok.count("_") + parts[1].count("_") or not raw.isascii()) \
                                    and not all(map(is_number, toks)):
                                raise ValueError
                        except ValueError:
                            del vals[start:]  # a partly converted line leaves nothing behind
                        else:
                            name = parts[1]
                            nid = name_ids.get(name)
                            if nid is None:
                                nid = self._new_name(name)
                            nv = len(toks)
                            seen = arity.get(name)
                            if seen is None:
                                arity[name] = (nv, lineno)
                            elif seen[0] != nv:
                                self.cur_raw = raw
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
                                # integers, unless one is too long to be finite as a double
                                exact_int = all(map(is_int_token, toks)) and all(v - v == 0 for v in vals[start:])
                                sk = EXACT * 8 + (1 if exact_int else 0)
                            add_name(nid)
                            add_ctx(ctx)
                            add_line(lineno)
                            add_end(v0 + start + nv)
                            add_sk(sk)
                            continue
                    self.cur_raw = raw
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
    def _bulk_run(self, lines, base: int, a: int, b: int) -> bool:
        """Read lines a..b-1 of a block (taps of one prefix, pixel headers, empty lines) in one go;
        False, with nothing changed, when a line needs the line reader's judgement (a value
        ``float`` refuses, a tap whose arity differs from its first line)."""
        kind = lines.kind[a:b]
        taps = a + np.flatnonzero(kind == blocks.TAP)
        heads = a + np.flatnonzero(kind == blocks.HEADER)
        if taps.size:
            got = self._bulk_taps(lines, taps, base)
            if got is None:
                return False
            group, names, values, sk, nvs = got
        pixels = self._bulk_headers(lines, heads, base)
        self.counts["blank_lines"] += int(np.count_nonzero(kind == blocks.BLANK))
        if taps.size:
            seg = np.searchsorted(heads, taps)  # headers before each tap: index into pixels
            # seg never decreases, so its distinct values come in order of their first record,
            # the order in which the line reader numbers contexts
            new = np.empty(len(seg), dtype=bool)
            new[0] = True
            np.not_equal(seg[1:], seg[:-1], out=new[1:])
            ctx = np.array(self._ctxs([(pixels[k], ()) for k in seg[new].tolist()]), dtype=np.int64)
            group.push(names.astype(np.int64, copy=False), ctx[np.cumsum(new) - 1], taps + (base + 1),
                       np.cumsum(nvs) + group.n_values, sk.astype(np.int64, copy=False), values)
        self.last_line = base + b
        last = lines.data[int(lines.starts[b - 1]):int(lines.ends[b - 1])]
        self.last_raw = last.decode("ascii") + "\n"
        return True

    def _bulk_taps(self, lines, taps: np.ndarray, base: int):
        """(group, global name codes, values, sigdigits*8+kind, arities) of the tap lines, or None."""
        group = self._group(lines.prefixes[int(lines.prefix[taps[0]])])
        local = lines.name[taps]
        nvs = lines.nv[taps]
        # the run's names, in order of first appearance (the order the line reader registers
        # new names in), and the arity of each one's first line
        first = first_positions(local)
        codes = local[first]
        arity_of = np.zeros(len(lines.names), dtype=np.int64)
        arity_of[codes] = nvs[first]
        if np.any(nvs != arity_of[local]):
            return None  # an arity change: the line reader words the problem
        for c, i in zip(codes.tolist(), first.tolist()):
            seen = group.arity.get(lines.names[c])
            if seen is not None and seen[0] != int(nvs[i]):
                return None
        vb, length = blocks.value_bytes(lines, taps)
        if length.size and int(length.max()) > TOKEN_MAX:
            return None  # a hostile kilobyte token: the line reader caps what it does with it
        if b"_" in vb:
            return None  # "1_00": float() reads it, C never prints it; the line reader refuses it
        toks = vb.split()
        if len(toks) != len(length):  # cannot happen for clean lines; never guess
            return None
        try:
            values = np.fromiter(map(float, toks), dtype=np.float64, count=len(toks))
        except ValueError:
            return None  # the line reader names the bad value and its line
        sk = self._bulk_sk(vb, length, nvs, toks, values)
        ids = np.zeros(len(lines.names), dtype=np.int64)
        for c, i in zip(codes.tolist(), first.tolist()):
            name = lines.names[c]
            nid = self.name_ids.get(name)
            ids[c] = self._new_name(name) if nid is None else nid
            if name not in group.arity:  # its first line, as the line reader records it
                group.arity[name] = (int(nvs[i]), base + 1 + int(taps[i]))
        return group, ids[local], values, sk, nvs

    @staticmethod
    def _bulk_sk(vb: bytes, length, nvs, toks: list, values) -> np.ndarray:
        """sigdigits * 8 + kind of each tap, by the line reader's rule (numbers._digits)."""
        digits = blocks.token_digits(vb, length)
        first_tok = np.zeros(len(nvs), dtype=np.int64)
        np.cumsum(nvs[:-1], out=first_tok[1:])
        per = np.maximum.reduceat(digits, first_tok)
        out = per * 8
        exact = np.flatnonzero(per == 0)
        if exact.size:
            # every component is an integer or inf/nan: "int" unless one is not finite (inf,
            # nan, or an integer too long for a double)
            in_exact = np.flatnonzero(np.repeat(per == 0, nvs))
            ok = np.isfinite(values[in_exact])
            bad_rec = np.repeat(np.arange(len(exact)), nvs[exact])[~ok]
            is_int = np.ones(len(exact), dtype=bool)
            is_int[bad_rec] = False
            out[exact] = EXACT * 8 + is_int
        return out

    def _bulk_headers(self, lines, heads: np.ndarray, base: int) -> list:
        """Apply the pixel headers in order; the pixel in force before the first header and
        after each one."""
        pixels = [self.pixel]
        if not heads.size:
            return pixels
        slow, fast, canon = blocks.canonical_headers(lines, heads)
        for i, s, f, ok in zip(heads.tolist(), slow.tolist(), fast.tolist(), canon.tolist()):
            if ok:
                self._set_pixel(s, f, base + i + 1)
            else:
                text = lines.data[int(lines.starts[i]):int(lines.ends[i])].decode("ascii")
                self._header(text.rstrip(), base + i + 1)
            pixels.append(self.pixel)
        return pixels

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

    def _ctxs(self, keys: list) -> list[int]:
        """_ctx of each (pixel, loop) key, numbered in this order when new."""
        got = list(map(self.ctx_ids.get, keys))
        if None in got:
            got = [self._ctx(*key) if c is None else c for key, c in zip(keys, got)]
        return got

    def _space_group(self, prefix: str) -> Group | None:
        """The group of a ``PREFIX:`` token, or None when it is not a tap prefix (free text, header)."""
        if prefix in (FREE, HEADER) or not prefix.isidentifier() or len(prefix) > PREFIX_LEN:
            return None
        return self._group(prefix)

    def _group(self, prefix: str) -> Group:
        group = self.groups.get(prefix)
        if group is None:
            group = self.groups[prefix] = Group(prefix)
        return group


def _grow(carry, chunk: bytes) -> bytearray:
    """``carry`` extended by ``chunk`` in place (amortised: a bytearray over-allocates)."""
    if not isinstance(carry, bytearray):
        carry = bytearray(carry)
    carry += chunk
    return carry
