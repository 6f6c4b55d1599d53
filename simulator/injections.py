"""Fault injections: each name reproduces one port-side incident of incidents.md on demand.

They are a diagnostic aid: run a clean and an injected simulation and diff their traces to
see what a real port bug of that class looks like. The table is docs/CONTRACTS.md §5.
"""

from __future__ import annotations

from typing import NamedTuple

from nbtrace.errors import UsageError


class Injection(NamedTuple):
    name: str
    row: int
    summary: str


INJECTIONS: tuple[Injection, ...] = (
    Injection("hkl-angstrom-lattice", 1, "h = a·q with a left in Å (×1e10)"),
    Injection("svec-inverse-angstrom", 2, "scattering vector in Å⁻¹ instead of m⁻¹ (×1e-10)"),
    Injection("fluence-beamsize-mm", 3, "fluence = flux·exposure/beamsize² with beamsize in mm"),
    Injection("flatt-normalization", 4, "F_latt per axis divided by N (sin(Nx)/(N sin x))"),
    Injection("svec-two-pi", 5, "q = 2π·(d − i)/λ"),
    Injection("hkl-reciprocal-vectors", 6, "h = a*·q with the static Å⁻¹ reciprocal vectors"),
    Injection("mosflm-half-pixel", 7, "MOSFLM +½ pixel dropped (other conventions: added)"),
    Injection("kahn-default-one", 8, "Kahn K defaults to 1.0, and P is never applied in the per-pixel (not -oversample_polar) path"),
    Injection("mosflm-lambda-twice", 9, "-mat: the A matrix scaled by 1e-10/λ twice (reciprocal and real vectors follow)"),
    Injection("triclinic-volume-formula", 10, "V = |a||b||c|: reciprocal vectors regenerated with it, real vectors derived back from them"),
    Injection("phi-midpoint", 11, "a single φ step taken at φ0 + osc/2"),
    Injection("sample-pivot-order", 13, "SAMPLE pivot: pix0 not rotated with the detector"),
    Injection("source-weights", 14, "zero-weight sources left out of steps"),
    Injection("oversample-auto", 15, "steps normalised with 4× the sampled oversampling"),
    Injection("abs-parallax", 16, "absorption obliquity |d·ô₀| from the untilted normal"),
    Injection("float32", 17, "float32 internally whatever -dtype says"),
    Injection("trace-one-subpixel", 20, "trace reports I_before_scaling as one subpixel's average share, sum ÷ oversample² (image unchanged)"),
    Injection("edge-geometry", 21, "pixels in a 10 % border band use −½ subpixel on the fast axis"),
)

NAMES = frozenset(i.name for i in INJECTIONS)


def listing() -> str:
    """``NAME<TAB>ROW<TAB>WHAT IT DOES`` lines (--list-injections): tab-separated for scripts
    (``cut -f1`` gives the names), one line per fault for people."""
    return "".join(f"{i.name}\t{i.row}\t{i.summary}\n" for i in INJECTIONS)


def validate(names: list[str]) -> frozenset[str]:
    """Check injection names; raise UsageError naming the bad one and the valid list."""
    for name in names:
        if name not in NAMES:
            raise UsageError(
                f"unknown injection '{name}'",
                hint="see --list-injections for the valid names",
            )
    return frozenset(names)
