"""Structure factors: the -hkl reader with the C's scanf quirks, nearest and tricubic lookup
(physics.md §3). The grid is a dense tensor indexed [h−h_min, k−k_min, l−l_min]."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from nbtrace.errors import UsageError

Tensor = torch.Tensor

_DOUBLE = re.compile(r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))", re.IGNORECASE)
_INT = re.compile(r"\s*([+-]?\d+)")


@dataclass(frozen=True)
class HKLTable:
    """Dense F grid (h_range+1, k_range+1, l_range+1) plus index bounds; ``count`` = hkls."""

    grid: Tensor | None
    mins: tuple[int, int, int]
    maxs: tuple[int, int, int]
    count: int
    default_F: float
    source: str

    def describe(self) -> str:
        if self.grid is None:
            return f"default_F:{self.default_F:g}"
        return f"file:{self.source} entries:{self.count}"


def _scan(text: str, pos: int, pattern: re.Pattern) -> tuple[str | None, int]:
    m = pattern.match(text, pos)
    return (m.group(1), m.end()) if m else (None, pos)


def _trunc(x: float) -> int:
    return int(x) if math.isfinite(x) else 0


def read_hkl(path: str, default_F: float, dtype, device) -> HKLTable:
    """Two-pass read exactly as the C: four doubles per entry, then int,int,int,double."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read -hkl file: {exc.strerror}", where=path,
                         hint="give an existing 'h k l F' text file") from None
    pos, entries = 0, 0
    mins, maxs = [10**9] * 3, [-(10**9)] * 3
    while True:
        vals = []
        for _ in range(4):
            tok, pos = _scan(text, pos, _DOUBLE)
            if tok is None:
                break
            vals.append(float(tok))
        if len(vals) < 4:
            break
        entries += 1
        for i in range(3):
            # the C stores min/max in ints: assigning a double truncates
            if mins[i] > vals[i]:
                mins[i] = _trunc(vals[i])
            if maxs[i] < vals[i]:
                maxs[i] = _trunc(vals[i])
    if entries == 0:
        return HKLTable(None, (0, 0, 0), (0, 0, 0), 0, default_F, path)
    ranges = [maxs[i] - mins[i] + 1 for i in range(3)]
    if min(ranges) < 0:
        raise UsageError("-hkl: negative index range", where=path, hint="check the h k l columns")
    grid = torch.zeros((ranges[0] + 1, ranges[1] + 1, ranges[2] + 1), dtype=torch.float64)
    if default_F != 0:
        grid[: ranges[0], : ranges[1], : ranges[2]] = default_F
    pos = 0
    for _ in range(entries):
        hkl = []
        for _ in range(3):
            tok, pos = _scan(text, pos, _INT)
            if tok is None:
                break
            hkl.append(int(tok))
        tok, pos = _scan(text, pos, _DOUBLE) if len(hkl) == 3 else (None, pos)
        if tok is None:
            break
        idx = tuple(hkl[i] - mins[i] for i in range(3))
        if all(0 <= idx[i] <= ranges[i] for i in range(3)):
            grid[idx] = float(tok)
    return HKLTable(grid.to(dtype=dtype, device=device), tuple(mins), tuple(maxs), entries, default_F, path)


def default_table(default_F: float) -> HKLTable:
    """No -hkl: every F_cell is default_F (the C reference reads no Fdump.bin either)."""
    return HKLTable(None, (0, 0, 0), (0, 0, 0), 0, default_F, "default_F")


def nearest(table: HKLTable, h0: Tensor, k0: Tensor, l0: Tensor, like: Tensor) -> Tensor:
    """F at integer indices (float tensors of any shape); default_F outside [min, max]."""
    if table.grid is None or table.count == 0:
        return torch.full_like(like, table.default_F)
    idx, inside = [], torch.ones_like(h0, dtype=torch.bool)
    for x, lo, hi in zip((h0, k0, l0), table.mins, table.maxs):
        inside &= (x >= lo) & (x <= hi)
        idx.append(torch.clamp(x - lo, 0, hi - lo).to(torch.long))
    values = table.grid[idx[0], idx[1], idx[2]]
    return torch.where(inside, values, torch.full_like(values, table.default_F))


def tricubic_in_range(table: HKLTable, h: Tensor, k: Tensor, l: Tensor) -> Tensor:
    """True where h_min+2 ≤ h ≤ h_max−2 on all three axes (the C's literal test)."""
    ok = torch.ones_like(h, dtype=torch.bool)
    for x, lo, hi in zip((h, k, l), table.mins, table.maxs):
        rng = hi - lo + 1
        ok &= ~(((x - lo + 3) > rng) | ((x - 2) < lo))
    return ok


def _polint(xa: list[Tensor], ya: list[Tensor], x: Tensor) -> Tensor:
    terms = []
    for i in range(4):
        num, den = None, None
        for j in range(4):
            if j == i:
                continue
            num = (x - xa[j]) if num is None else num * (x - xa[j])
            den = (xa[i] - xa[j]) if den is None else den * (xa[i] - xa[j])
        terms.append(num * ya[i] / den)
    return terms[0] + terms[1] + terms[2] + terms[3]


def tricubic(table: HKLTable, h: Tensor, k: Tensor, l: Tensor) -> Tensor:
    """Nested 4-point Lagrange interpolation (l, then k, then h) for points that are in range.

    h, k, l: (M,) fractional indices; callers pass only in-range points.
    """
    grid = table.grid
    floors = [torch.floor(x) for x in (h, k, l)]
    nodes = [[fl + (j - 1) for j in range(4)] for fl in floors]
    base = [(fl - lo - 1).to(torch.long) for fl, lo in zip(floors, table.mins)]
    ym = []
    for i in range(4):
        yk = []
        for j in range(4):
            ys = [grid[base[0] + i, base[1] + j, base[2] + m] for m in range(4)]
            yk.append(_polint(nodes[2], ys, l))
        ym.append(_polint(nodes[1], yk, k))
    return _polint(nodes[0], ym, h)
