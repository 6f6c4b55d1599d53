"""Structure factors: the -hkl reader with the C's scanf quirks, nearest and tricubic lookup
(physics.md §3). The grid is a dense tensor indexed [h−h_min, k−k_min, l−l_min]."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from nbtrace.errors import UsageError

Tensor = torch.Tensor



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


_INT_TOKEN = re.compile(r"^[+-]?\d+$")


def _strict_entries(path: str, text: str) -> list[tuple[int, int, int, float]]:
    """Every non-blank line is 'h k l F' with integer indices, else a file:line:col error.

    The original reads four doubles then 'int int int double' and silently stops or shifts
    columns on anything else (physics §3.1); both producers of this project refuse such files
    instead, with the same messages.
    """
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = [(m.group(0), m.start() + 1) for m in re.finditer(r"[^ \t\r\n]+", line)]
        if not fields:
            continue
        if len(fields) != 4:
            found = "more than 4" if len(fields) > 4 else str(len(fields))
            raise UsageError(f"expected 4 columns 'h k l F', found {found}", where=f"{path}:{lineno}",
                             hint="remove headers and extra columns")
        for tok, col in fields[:3]:
            if not _INT_TOKEN.match(tok):
                raise UsageError(f"Miller index '{tok}' is not an integer", where=f"{path}:{lineno}:{col}",
                                 hint="write h k l as integers, e.g. 1 2 3 100.0")
        tok, col = fields[3]
        try:
            F = float(tok)
        except ValueError:
            raise UsageError(f"structure factor '{tok}' is not a number", where=f"{path}:{lineno}:{col}",
                             hint="the 4th column is F") from None
        entries.append((int(fields[0][0]), int(fields[1][0]), int(fields[2][0]), F))
    if not entries:
        raise UsageError("no reflections found", where=f"{path}:{len(text.splitlines())}", hint="lines of 'h k l F'")
    return entries


def read_hkl(path: str, default_F: float, dtype, device) -> HKLTable:
    """The -hkl table: a dense grid with one padding plane per axis, prefilled with default_F
    in range (physics §3.1); later duplicates overwrite earlier ones."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot open -hkl file: {exc.strerror}", where=f"{path}:0", hint="check the path") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UsageError("not a text file (non-ASCII byte)", where=f"{path}:{line}",
                         hint="give an 'h k l F' text file") from None
    entries = _strict_entries(path, text)
    mins = tuple(min(e[i] for e in entries) for i in range(3))
    maxs = tuple(max(e[i] for e in entries) for i in range(3))
    ranges = [maxs[i] - mins[i] + 1 for i in range(3)]
    grid = torch.zeros((ranges[0] + 1, ranges[1] + 1, ranges[2] + 1), dtype=torch.float64)
    if default_F != 0:
        grid[: ranges[0], : ranges[1], : ranges[2]] = default_F
    for h, k, l, F in entries:
        grid[h - mins[0], k - mins[1], l - mins[2]] = F
    return HKLTable(grid.to(dtype=dtype, device=device), mins, maxs, len(entries), default_F, path)


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
