"""Beam: wavelengths, divergence grid, -sourcefile, fluence (physics.md §4)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from nbtrace.errors import UsageError
from nbtrace.sim.constants import SOURCE_DISTANCE

Tensor = torch.Tensor


def auto_steps(n: int, r: float, d: float, thickness: bool = False) -> tuple[int, float, float]:
    """§4.6 count/range/step auto-selection; returns (n, r, δ). ``thickness`` picks its column."""
    if n <= 0:
        if r < 0:
            if d <= 0:
                n, r, d = 1, 0.0, 0.0
            else:
                r, n = d, 2
        elif d <= 0:
            if thickness:
                n, d = 2, r / 2.0
            else:
                d, n = r, 2
        else:
            n = math.ceil(r / d)
    else:
        if r < 0:
            if d <= 0:
                r = 0.5e-6 if thickness else 1.0
                d = r / n
            else:
                r, n = d, 2
        elif d <= 0:
            n = max(n, 2)
            d = r / (n - 1)
    if r <= 0 or d <= 0 or n <= 0:
        n, r, d = 1, 0.0, 0.0
    return int(n), r, d


@dataclass(frozen=True)
class Sources:
    """Per-source incident unit vectors (S, 3), wavelengths (S,) in m and file weights (S,)."""

    incident: Tensor
    wavelength: Tensor
    weight: Tensor


def _normalized(v, zero_stays: bool = False):
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    if n == 0.0 and zero_stays:  # nanoBragg's unitize: a -polar_vector along the beam gives a zero axis
        return (0.0, 0.0, 0.0)
    if n == 0.0:  # IEEE like the C: a zero vector (e.g. a "# comment" source line) gives NaN
        return (math.nan, math.nan, math.nan)
    return (v[0] / n, v[1] / n, v[2] / n)


def _rot(v, k, t):
    c, s = math.cos(t), math.sin(t)
    d = (k[0] * v[0] + k[1] * v[1] + k[2] * v[2]) * (1.0 - c)
    kx = (k[1] * v[2] - k[2] * v[1], k[2] * v[0] - k[0] * v[2], k[0] * v[1] - k[1] * v[0])
    return tuple(k[i] * d + v[i] * c + kx[i] * s for i in range(3))


def divergence_grid(cfg, beam, polar) -> list[tuple[float, float, float]]:
    """Source positions (m) of the H×V divergence grid after the elliptical trim (§4.2)."""
    hs, hr, hd = auto_steps(cfg.hdivsteps, cfg.hdivrange, cfg.hdivstep)
    vs, vr, vd = auto_steps(cfg.vdivsteps, cfg.vdivrange, cfg.vdivstep)
    vert = _normalized((beam[1] * polar[2] - beam[2] * polar[1],
                        beam[2] * polar[0] - beam[0] * polar[2],
                        beam[0] * polar[1] - beam[1] * polar[0]), zero_stays=True)
    points = []
    for i in range(hs):
        for j in range(vs):
            hdiv = hd * i - hr / 2.0
            vdiv = vd * j - vr / 2.0
            if cfg.round_div:
                with_nan = _trim_value(hdiv, hd, hs, hr) + _trim_value(vdiv, vd, vs, vr)
                # NaN (a zero range) never compares > 1.1, so nothing is trimmed then
                if 4.0 * with_nan > 1.1:
                    continue
            start = tuple(-SOURCE_DISTANCE * x for x in beam)
            points.append(_rot(_rot(start, polar, vdiv), vert, hdiv))
    return points


def _trim_value(x, step, n, rng):
    num = x * x - step * step / 4.0 * (1 - n % 2)
    if rng == 0:
        return math.nan
    return num / (rng * rng)


def read_sourcefile(path: str, beam, lambda0: float) -> list[tuple[tuple, float, float]]:
    """(position, weight, λ m) per non-blank line of 'X Y Z weight lambda_m' (physics §4.3).

    Missing columns default to −10·b̂, weight 1, λ0. Anything that is not a number is a
    file:line:col error: the original reads it as 0 (a '# comment' becomes a source at the
    origin); both producers of this project refuse it instead.
    """
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot open -sourcefile: {exc.strerror}", where=f"{path}:0", hint="check the path") from None
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = [(m.group(0), m.start() + 1) for m in re.finditer(r"[^ \t\r\n,;:!]+", line)]
        if not fields:
            continue
        if len(fields) > 5:
            raise UsageError("more than 5 columns", where=f"{path}:{lineno}", hint="X Y Z weight lambda_m per line")
        vals = [-SOURCE_DISTANCE * beam[0], -SOURCE_DISTANCE * beam[1], -SOURCE_DISTANCE * beam[2], 1.0, lambda0]
        for k, (tok, col) in enumerate(fields):
            try:
                vals[k] = float(tok)
            except ValueError:
                raise UsageError(f"'{tok}' is not a number", where=f"{path}:{lineno}:{col}",
                                 hint="no comments or headers; X Y Z weight lambda_m") from None
        out.append(((vals[0], vals[1], vals[2]), vals[3], vals[4]))
    return out


def wavelengths(cfg, lambda0: Tensor) -> Tensor:
    """λ_k = λ0·(1 + Δd·k − dispersion/2), k < dispsteps (m), shape (dispsteps,)."""
    n, r, d = auto_steps(cfg.dispsteps, cfg.dispersion, -1.0)
    k = torch.arange(n, dtype=lambda0.dtype, device=lambda0.device)
    return lambda0 * (1.0 + d * k - r / 2.0)


def build_sources(cfg, beam, polar, lambda0: Tensor) -> Sources:
    """All sources in the C's creation order; ``beam``/``polar`` are unit 3-tuples."""
    dt, dev = lambda0.dtype, lambda0.device
    if cfg.sourcefile:
        rows = read_sourcefile(cfg.sourcefile, beam, float(lambda0))
        if not rows:
            raise UsageError("-sourcefile holds no sources", where=f"{cfg.sourcefile}:0",
                             hint="one 'X Y Z weight lambda_m' per line")
        inc = [tuple(-x for x in _normalized(pos)) for pos, _, _ in rows]
        lam = torch.tensor([lm for _, _, lm in rows], dtype=dt, device=dev)
        given_lambda0 = all(lm == float(lambda0) for _, _, lm in rows)
        if given_lambda0:
            lam = lambda0.expand(len(rows))  # keeps d/dλ alive when the file uses λ0
        weights = torch.tensor([w for _, w, _ in rows], dtype=dt, device=dev)
        return Sources(torch.tensor(inc, dtype=dt, device=dev), lam, weights)
    points = divergence_grid(cfg, beam, polar)
    lams = wavelengths(cfg, lambda0)
    inc = [tuple(-x for x in _normalized(p)) for p in points for _ in range(lams.shape[0])]
    lam = lams.repeat(len(points))
    incident = torch.tensor(inc, dtype=dt, device=dev).reshape(-1, 3)
    return Sources(incident, lam, torch.ones(lam.shape[0], dtype=dt, device=dev))


def fluence(cfg) -> float:
    """Photons/m² (§4.5): flux·exposure/beamsize² overrides -fluence when flux is given."""
    if cfg.flux != 0 and cfg.exposure > 0 and cfg.beamsize >= 0:
        size = cfg.beamsize * 1000.0 if cfg.has("fluence-beamsize-mm") else cfg.beamsize
        return cfg.flux * cfg.exposure / (size * size)
    return cfg.fluence
