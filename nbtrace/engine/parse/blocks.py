"""Vectorised reading of large logs: a block of bytes is split into lines and each line is sorted,
with numpy over the whole block, into what the bulk reader may take and what it may not.

The bulk reader (``LineParser._bulk_run``) only takes lines it can read with no decision of its
own, and leaves everything else to the line-by-line reader (which handles every form):

* a *tap* line ``PREFIX: name v1 [v2 ...]`` exactly: printable ASCII, single spaces, nothing
  before the prefix or after the last value, a name of at most ``NAME_MAX`` bytes;
* a *header* line ``TRACE_CONFIG: ...`` of printable ASCII (its pixel is read as the line
  reader reads it; the usual ``tracing pixel (spixel=S, fpixel=F)`` spelling is read here);
* an empty line.

Printable ASCII with single spaces means ``bytes.split()`` gives the tokens ``str.split()`` gives
the line reader; the values are converted by ``float`` itself, so the two paths cannot disagree on
what a number is. Prefixes and names are compared as whole byte strings (packed into 64-bit
words, checked word by word), never by a hash alone.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nbtrace.engine.parse.numbers import _zero_digits

OTHER, TAP, HEADER, BLANK = 0, 1, 2, 3
PREFIX_MAX = 16  # bytes (2 words); longer prefixes go line by line
NAME_MAX = 32  # bytes (4 words); longer names go line by line
PAD = bytes(8 * (NAME_MAX // 8 + 1))  # after a block, so that every word read stays in the buffer
HEADER_PREFIX = "TRACE_CONFIG"
_CANON_HEAD = b"TRACE_CONFIG: tracing pixel (spixel="
_CANON_MID = b", fpixel="
_DIGITS_MAX = 9  # a canonical header's numbers: at most this many digits (int64-safe, no sign)

_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
_STRIP = np.zeros(256, dtype=bool)  # characters _digits strips from the front of a number
for _c in b"+-0.":
    _STRIP[_c] = True
_IS_DIGIT = np.zeros(256, dtype=bool)
_IS_DIGIT[ord("0"):ord("9") + 1] = True
_EXP_BEFORE = _IS_DIGIT.copy()  # what may precede the e of an exponent in a number
_EXP_BEFORE[ord(".")] = True


class Lines(NamedTuple):
    """The lines of one block (n lines): content is ``data[starts[i]:ends[i]]`` (no "\n" or
    "\r\n"), the whole line with its line end ``data[starts[i]:stops[i]]``.

    kind: (n,) int8, OTHER / TAP / HEADER / BLANK.
    prefix, name: (n,) int64 codes into ``prefixes`` / ``names`` (block-local; -1 where unused).
    nv: (n,) int64 number of values of a tap line.
    first_space, n_spaces: (n,) int64, index into ``spaces`` (every space of the block) of the
        line's first space, and how many it has (a tap's values follow spaces first_space+1 ...).
    """

    data: bytes
    starts: np.ndarray
    ends: np.ndarray
    stops: np.ndarray
    kind: np.ndarray
    prefix: np.ndarray
    prefixes: list
    name: np.ndarray
    names: list
    nv: np.ndarray
    spaces: np.ndarray
    first_space: np.ndarray
    n_spaces: np.ndarray


def words_view(data: bytes) -> np.ndarray:
    """Every 8-byte little-endian word of ``data`` (word i starts at byte i; overlapping)."""
    return np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, offset=0, strides=(1,))


def scan(data: bytes, size: int, tap_prefix_ok) -> Lines:
    """Sort the lines of ``data[:size]`` (which ends with a newline, except perhaps the last line
    of a file; ``data`` continues with ``PAD``). ``tap_prefix_ok(str) -> bool`` says which prefixes
    are tap prefixes. A last line without a newline is always OTHER (the line reader knows what
    to say about a file that ends mid-line)."""
    buf = np.frombuffer(data, dtype=np.uint8, count=size)
    nl = np.flatnonzero(buf == 10)
    open_end = size > 0 and data[size - 1] != 10
    stops = np.append(nl + 1, size) if open_end else nl + 1  # just after each line's newline
    starts = np.empty_like(stops)
    starts[:1] = 0
    starts[1:] = stops[:-1]
    ends = stops - 1 if not open_end else np.append(nl, size)
    n_cr = data.count(b"\r", 0, size)
    if n_cr:  # "\r\n" line ends (the caller sends no other carriage return): content stops before
        ends = ends - ((ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13))
    n = len(ends)
    length = ends - starts
    spaces = np.flatnonzero(buf == 32)
    clean = _clean_lines(data, buf, size, starts, length, spaces, len(nl) + n_cr)
    if open_end:
        clean[-1] = False
    upto = np.searchsorted(spaces, ends)  # spaces before each line's end
    first = np.empty_like(upto)  # ... and before its start: the newline between holds none
    first[:1] = 0
    first[1:] = upto[:-1]
    n_sp = upto - first
    kind = np.zeros(n, dtype=np.int8)
    kind[length == 0] = BLANK  # (an open last line is never empty)
    prefix = np.full(n, -1, dtype=np.int64)
    name = np.full(n, -1, dtype=np.int64)
    nv = np.zeros(n, dtype=np.int64)
    words = words_view(data)
    # the prefix: the first token, ending with ':', of a clean line with at least one space
    cand = np.flatnonzero(clean & (n_sp >= 1))
    sp_end = len(spaces) - 1
    colon = spaces[np.minimum(first[cand], sp_end)] - 1
    plen = colon - starts[cand]
    ok = (buf[np.maximum(colon, 0)] == ord(":")) & (plen >= 1) & (plen <= PREFIX_MAX)
    cand, plen = cand[ok], plen[ok]
    prefixes: list[str] = []
    names: list[str] = []
    coded = _codes(words, starts[cand], plen, PREFIX_MAX // 8) if cand.size else None
    if coded is not None:
        codes, exemplars = coded
        prefixes = _strings(data, starts[cand][exemplars], plen[exemplars])
        prefix[cand] = codes
        is_header = np.array([p == HEADER_PREFIX for p in prefixes], dtype=bool)
        is_tap = np.array([tap_prefix_ok(p) for p in prefixes], dtype=bool)
        kind[cand[is_header[codes]]] = HEADER
        taps = cand[is_tap[codes] & (n_sp[cand] >= 2)]
        got = _tap_names(data, words, spaces, starts, first, taps, name)
        if got is not None:
            names, named = got
            kind[named] = TAP
            nv[named] = n_sp[named] - 1
    return Lines(data, starts, ends, stops, kind, prefix, prefixes, name, names, nv, spaces, first, n_sp)


def _strings(data: bytes, pos: np.ndarray, length: np.ndarray) -> list[str]:
    return [data[p:p + k].decode("ascii") for p, k in zip(pos.tolist(), length.tolist())]


def _clean_lines(data: bytes, buf: np.ndarray, size: int, starts: np.ndarray, length: np.ndarray,
                 spaces: np.ndarray, n_newlines: int) -> np.ndarray:
    """True for lines of printable ASCII separated by single spaces (none leading or trailing).
    n_newlines: line-end characters ("\n", and the "\r" of "\r\n") in the block; a "\r" that
    ends no line is not clean (the content of a line stops before its "\r\n")."""
    n = len(starts)
    clean = np.ones(n, dtype=bool)
    ctrl = buf < 32
    if np.count_nonzero(ctrl) > n_newlines:  # control characters other than the line ends
        bad = np.flatnonzero(ctrl & (buf != 10) & (buf != 13))
    else:
        bad = np.zeros(0, dtype=np.int64)
    if not data.isascii() or data.find(b"\x7f", 0, size) >= 0:  # (the padding is ASCII)
        bad = np.union1d(bad, np.flatnonzero(buf >= 127))
    if bad.size:
        clean[np.searchsorted(starts, bad, side="right") - 1] = False
    double = spaces[1:][np.diff(spaces) == 1]
    if double.size:
        clean[np.searchsorted(starts, double, side="right") - 1] = False
    has = length > 0
    idx = np.flatnonzero(has)
    edge = (buf[starts[idx]] == 32) | (buf[starts[idx] + length[idx] - 1] == 32)
    clean[idx[edge]] = False
    return clean


def _codes(words: np.ndarray, pos: np.ndarray, length: np.ndarray, n_words: int):
    """Codes of the byte strings ``data[pos[i]:pos[i] + length[i]]`` (each at most 8 * n_words
    long): equal strings get equal codes, numbered in order of first appearance. Returns (codes,
    index of each code's first string), or None in the (never seen) case of two strings sharing
    a hash: every string is compared with its code's first string, word by word."""
    n_words = min(n_words, max(1, -(-int(length.max(initial=1)) // 8)))
    cols = [words[pos] & _MASKS[np.minimum(length, 8)]]
    for j in range(1, n_words):
        cols.append(words[pos + 8 * j] & _MASKS[np.clip(length - 8 * j, 0, 8)])
    # most lines of a log share one prefix: those equal to the commonest string of the first
    # lines need no hashing
    head = cols[0][:64]
    u, inv, cnt = np.unique(head, return_inverse=True, return_counts=True)
    ref = int(np.argmax(inv.reshape(-1) == np.argmax(cnt)))
    same = length == length[ref]
    for w in cols:
        same &= w == w[ref]
    if np.count_nonzero(same) * 2 < len(same):
        return _hashed(cols, length)
    rest = np.flatnonzero(~same)
    if not rest.size:
        return np.zeros(len(same), dtype=np.int64), np.zeros(1, dtype=np.int64)
    sub = _hashed([w[rest] for w in cols], length[rest])
    if sub is None:
        return None
    first = np.concatenate(([np.argmax(same)], rest[sub[1]]))
    local = np.empty(len(same), dtype=np.int64)
    local[same] = 0
    local[rest] = sub[0] + 1
    order = np.argsort(first, kind="stable")  # number the codes in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[local], first[order]


def _hashed(cols: list, length: np.ndarray):
    """_codes of strings given as masked words (``cols``, one array per word) and lengths."""
    h = cols[0] ^ length.astype(np.uint64)
    with np.errstate(over="ignore"):
        for w in cols[1:]:  # any mix will do: equal strings get equal h, and h is checked
            h = h * np.uint64(0x9E3779B97F4A7C15) + w
    uniq, first = _distinct(h)
    at = np.searchsorted(uniq, h)
    ex = first[at]
    same = length == length[ex]
    for w in cols:
        same &= w == w[ex]
    if not same.all():
        return None
    order = np.argsort(first, kind="stable")  # number the codes in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[at], first[order]


def _distinct(h: np.ndarray, sample: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``h`` (sorted) and the index of the first of each. A log repeats a
    few dozen names, so the distinct values of a sample are looked up (a binary search in a tiny
    table) instead of sorting every value; only values missing from the sample are sorted."""
    uniq, first = np.unique(h[:sample], return_index=True)
    at = np.minimum(np.searchsorted(uniq, h), len(uniq) - 1)
    miss = np.flatnonzero(uniq[at] != h)
    if miss.size:
        more, more_first = np.unique(h[miss], return_index=True)
        uniq = np.concatenate((uniq, more))
        first = np.concatenate((first, miss[more_first]))
        order = np.argsort(uniq)
        uniq, first = uniq[order], first[order]
    return uniq, first


def _tap_names(data, words, spaces, starts, first, taps, name_out):
    """Name codes of tap lines (written into ``name_out``); lines whose name is longer than
    NAME_MAX or not an identifier are left out. Returns (names, tap lines kept) or None."""
    if not taps.size:
        return None
    n_start = spaces[first[taps]] + 1
    n_len = spaces[first[taps] + 1] - n_start
    keep = n_len <= NAME_MAX
    taps, n_start, n_len = taps[keep], n_start[keep], n_len[keep]
    if not taps.size:
        return None
    coded = _codes(words, n_start, n_len, NAME_MAX // 8)
    if coded is None:
        return None
    codes, exemplars = coded
    names = _strings(data, n_start[exemplars], n_len[exemplars])
    ident = np.array([nm.isidentifier() for nm in names], dtype=bool)
    good = ident[codes]
    name_out[taps[good]] = codes[good]
    return names, taps[good]


def value_bytes(lines: Lines, taps: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The value tokens of the tap lines ``taps`` (in order) as one byte string, each token
    followed by one space or newline, and the length of each token ((total,) int64).

    Built by keeping, of the block's bytes, only each tap line's values and its newline (one
    boolean compaction), so ``split()`` of the result gives exactly the value tokens."""
    nv = lines.nv[taps]
    total = int(nv.sum())
    sp = lines.spaces
    first_tok = np.zeros(len(taps), dtype=np.int64)
    np.cumsum(nv[:-1], out=first_tok[1:])
    # the k-th value of a line follows its space number first_space + 1 + k
    k = np.arange(total, dtype=np.int64) + np.repeat(lines.first_space[taps] + 1 - first_tok, nv)
    start = sp[k] + 1
    end = np.empty_like(start)
    end[:-1] = start[1:] - 1  # a token ends at the space before the next one...
    end[np.r_[first_tok[1:] - 1, total - 1]] = lines.ends[taps]  # ... or at its line's end
    v_start = start[first_tok]  # where each line's values begin
    v_stop = lines.ends[taps] + 1  # one line-end byte kept: the separator after the last value
    lo = int(lines.starts[taps[0]])
    drop = v_start - np.r_[lo, v_stop[:-1]]
    keep = v_stop - v_start
    lengths = np.empty(2 * len(taps), dtype=np.int64)
    lengths[0::2], lengths[1::2] = drop, keep
    pattern = np.zeros(2 * len(taps), dtype=bool)
    pattern[1::2] = True
    buf = np.frombuffer(lines.data, dtype=np.uint8, count=int(v_stop[-1]))[lo:]
    return buf[np.repeat(pattern, lengths)].tobytes(), end - start


def token_digits(vb: bytes, length: np.ndarray) -> np.ndarray:
    """``numbers._digits`` of every token of ``vb`` (tokens of the given lengths, one separator
    byte after each), for tokens ``float`` accepts (so at most one point and one exponent
    letter): the significant digits run from the first character not in ``+-0.`` to the exponent
    or the end, less one for a point among them; 0 for a token with neither point nor exponent;
    an all-zero mantissa counts its printed digits."""
    buf = np.frombuffer(vb, dtype=np.uint8)
    n = len(length)
    start = np.zeros(n, dtype=np.int64)
    np.cumsum(length[:-1] + 1, out=start[1:])
    end = start + length
    lead = np.zeros(n, dtype=np.int64)
    lead_dot = np.zeros(n, dtype=bool)  # a point among the leading +-0. characters
    act = np.arange(n)
    k = 0
    while act.size:  # the leading run: a few characters at most, so a few passes
        pos = start[act] + k
        b = buf[np.minimum(pos, len(buf) - 1)]
        more = (pos < end[act]) & _STRIP[b]
        lead_dot[act[more & (b == ord("."))]] = True
        lead[act[~more]] = k
        act = act[more]
        k += 1
    has_dot = np.logical_or.reduceat(buf == ord("."), start) if n else np.zeros(0, dtype=bool)
    mant_end = end.copy()
    has_e = np.zeros(n, dtype=bool)
    e_pos = np.flatnonzero((buf == ord("e")) | (buf == ord("E")))
    t = np.searchsorted(start, e_pos, side="right") - 1
    has_e[t] = True
    mant_end[t] = e_pos
    region = mant_end - (start + lead)
    digits = region - (has_dot & ~lead_dot)
    marked = has_e | has_dot
    out = np.where(marked, digits, 0)
    for i in np.flatnonzero(marked & (region <= 0)).tolist():
        out[i] = _zero_digits(vb[start[i]:end[i]].decode("ascii"))
    return out


def canonical_headers(lines: Lines, heads: np.ndarray):
    """(slow, fast) int64 arrays for the header lines ``heads``, and a mask of those written
    exactly ``TRACE_CONFIG: tracing pixel (spixel=S, fpixel=F)`` (plain digits); the others are
    left to the line reader's own header rules."""
    data, starts, ends = lines.data, lines.starts[heads], lines.ends[heads]
    buf = np.frombuffer(data, dtype=np.uint8)
    words = words_view(data)
    ok = (ends - starts) > len(_CANON_HEAD) + len(_CANON_MID) + 3
    ok &= _same_bytes(words, starts, _CANON_HEAD)
    slow, p = _read_digits(buf, starts + len(_CANON_HEAD), ok)
    ok &= (p - (starts + len(_CANON_HEAD)) >= 1)
    ok &= _same_bytes(words, np.where(ok, p, starts), _CANON_MID)
    fast, q = _read_digits(buf, p + len(_CANON_MID), ok)
    ok &= (q - (p + len(_CANON_MID)) >= 1) & (buf[np.minimum(q, len(buf) - 1)] == ord(")")) & (q + 1 == ends)
    return slow, fast, ok


def _same_bytes(words: np.ndarray, pos: np.ndarray, literal: bytes) -> np.ndarray:
    ok = np.ones(len(pos), dtype=bool)
    for j in range(0, len(literal), 8):
        piece = literal[j:j + 8]
        want = np.uint64(int.from_bytes(piece, "little"))
        ok &= (words[pos + j] & _MASKS[len(piece)]) == want
    return ok


def _read_digits(buf: np.ndarray, pos: np.ndarray, ok: np.ndarray):
    """The decimal number of up to _DIGITS_MAX digits at each position, and where it ends."""
    value = np.zeros(len(pos), dtype=np.int64)
    at = pos.copy()
    going = ok.copy()
    for _ in range(_DIGITS_MAX + 1):
        b = buf[np.minimum(at, len(buf) - 1)]
        d = going & _IS_DIGIT[b]
        value = np.where(d, value * 10 + (b.astype(np.int64) - 48), value)
        at = np.where(d, at + 1, at)
        going = d
    ok &= ~going  # more digits than _DIGITS_MAX
    return value, at
