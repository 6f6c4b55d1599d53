"""Units a tap can hold, their dimensions, and the conversion factors that explain a scale error.

A spec declares the unit a value *actually* holds (``scattering_vec_A_inv`` holds m⁻¹).
When port/reference is a constant ratio, :func:`explain_factor` names it: 1e10 is "Å where m
was expected" for a length, 1e-10 is "Å⁻¹ vs m⁻¹" for an inverse length, and so on.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from nbtrace.errors import SpecError


class Unit(NamedTuple):
    name: str
    dimension: str  # "length", "inverse_length", "area", "angle", "solid_angle", ...
    to_si: float  # value_in_si = value * to_si


_UNITS: dict[str, Unit] = {}


def _add(dimension: str, to_si: float, *names: str) -> None:
    for n in names:
        _UNITS[n] = Unit(names[0], dimension, to_si)


_add("dimensionless", 1.0, "1", "-", "", "dimensionless", "unit", "unit_vector", "ratio", "fraction")
_add("count", 1.0, "count", "int", "flag", "index")
_add("length", 1.0, "m", "meter", "meters", "metre", "metres")
_add("length", 1e-3, "mm", "millimeter", "millimeters")
_add("length", 1e-6, "um", "µm", "micron", "microns")
_add("length", 1e-9, "nm")
_add("length", 1e-10, "A", "Å", "angstrom", "angstroms", "Angstrom")
_add("inverse_length", 1.0, "m^-1", "1/m", "m-1", "m⁻¹")
_add("inverse_length", 1e3, "mm^-1", "1/mm", "mm-1", "mm⁻¹")
_add("inverse_length", 1e10, "A^-1", "1/A", "A-1", "Å^-1", "Å⁻¹", "A_inv")
_add("area", 1.0, "m^2", "m2", "m²")
_add("area", 1e-6, "mm^2", "mm2", "mm²")
_add("area", 1e-20, "A^2", "A2", "Å²")
_add("volume", 1.0, "m^3", "m3", "m³")
_add("volume", 1e-9, "mm^3", "mm3", "mm³")
_add("volume", 1e-30, "A^3", "A3", "Å³")
_add("angle", 1.0, "rad", "radian", "radians")
_add("angle", math.pi / 180.0, "deg", "degree", "degrees", "°")
_add("angle", 1e-3, "mrad")
_add("solid_angle", 1.0, "sr", "steradian")
_add("photons", 1.0, "photons", "photon", "counts")
_add("fluence", 1.0, "photons/m^2", "photons/m2", "ph/m^2", "ph/m2")
_add("fluence", 1e6, "photons/mm^2", "photons/mm2", "ph/mm^2")
_add("electrons", 1.0, "electrons", "e", "e-")
_add("intensity", 1.0, "electrons^2", "F^2")
_add("time", 1.0, "s", "second", "seconds")
_add("string", 1.0, "string", "text")


def parse_unit(text: str) -> Unit:
    """The unit named ``text``; raises SpecError listing known names when unknown."""
    key = str(text).strip()
    if key in _UNITS:
        return _UNITS[key]
    raise SpecError(
        f"unknown unit {text!r}",
        hint="use one of: " + ", ".join(sorted({u.name for u in _UNITS.values()})),
    )


def known_units() -> list[str]:
    return sorted({u.name for u in _UNITS.values()})


# Name suffixes real traces use, for scaffolding a spec from a trace (`nbtrace taps init`).
SUFFIX_UNITS: tuple[tuple[str, str], ...] = (
    ("_A_inv", "A^-1"),
    ("_meters", "m"),
    ("_metres", "m"),
    ("_m", "m"),
    ("_mm", "mm"),
    ("_um", "um"),
    ("_angstroms", "A"),
    ("_angstrom", "A"),
    ("_A", "A"),
    ("_sr", "sr"),
    ("_rad", "rad"),
    ("_deg", "deg"),
    ("_mrad", "mrad"),
    ("_per_m2", "photons/m^2"),
    ("_vec", "1"),
    ("_sqr", "m^2"),
)


def guess_unit(name: str) -> str:
    """A unit guessed from a tap name's suffix ("1" when nothing matches)."""
    for suffix, unit in SUFFIX_UNITS:
        if name.endswith(suffix):
            return unit
    return "1"


class NamedFactor(NamedTuple):
    factor: float  # port / reference
    meaning: str
    # dimensions of the taps this factor may explain (empty: any): a run factor such as 1/λ
    # explains a reciprocal vector, never a count that happens to equal it
    dims: tuple[str, ...] = ()


def _unit_pairs(dimension: str) -> list[NamedFactor]:
    """Every ratio between two distinct units of one dimension, with its meaning."""
    units = {u.name: u for u in _UNITS.values() if u.dimension == dimension}
    out: list[NamedFactor] = []
    for a in units.values():
        for b in units.values():
            if a.name == b.name:
                continue
            # a value meant in unit b but held in unit a is multiplied by b.to_si / a.to_si
            factor = b.to_si / a.to_si
            out.append(NamedFactor(factor, f"{_pretty(a.name)} where {_pretty(b.name)} was expected"))
    return out


_PRETTY = {"photons/m^2": "photons/m²", "A": "Å", "A^-1": "Å⁻¹", "m^-1": "m⁻¹", "mm^-1": "mm⁻¹", "um": "µm", "m^2": "m²",
           "mm^2": "mm²", "A^2": "Å²", "m^3": "m³", "mm^3": "mm³", "A^3": "Å³", "deg": "degrees", "rad": "radians"}


def _pretty(name: str) -> str:
    return _PRETTY.get(name, name)


# Dimensions whose conversions also explain squared factors of another dimension.
_SQUARE_OF = {"area": "length", "fluence": "length", "solid_angle": "length", "intensity": "length"}


def named_factors(dimension: str) -> list[NamedFactor]:
    """Factors that a unit or convention mistake in a value of ``dimension`` produces.

    Always includes the pure conventions (2π, its inverse, sign handled elsewhere); for a
    dimension with units, every cross-unit ratio; for areas and fluences the squares of the
    length conversions ("(mm→m)²: a squared unit").
    """
    out = list(_unit_pairs(dimension))
    if dimension in ("length", "inverse_length"):
        # crystallographic (1/d) vs physics (2π/d) convention
        out.append(NamedFactor(2 * math.pi, "an extra 2π: physics (q = 2π/d) vs crystallographic (1/d) convention"))
        out.append(NamedFactor(1 / (2 * math.pi), "a missing 2π: crystallographic vs physics convention"))
    if dimension in ("dimensionless", "angle"):
        out.append(NamedFactor(2 * math.pi, "an extra 2π"))
        out.append(NamedFactor(1 / (2 * math.pi), "a missing 2π"))
        out.append(NamedFactor(math.pi / 180, "degrees converted twice (×π/180)"))
        out.append(NamedFactor(180 / math.pi, "radians read as degrees (×180/π)"))
    # (a dimensionless tap gets no unit story from a power of ten: h = a·S with a in Å is the
    # spec's hint for hkl_frac, where it is known to be the likely story)
    base = _SQUARE_OF.get(dimension)
    if base:
        for big, small in _ordered_pairs(base):
            f = (big.to_si / small.to_si) ** 2
            meaning = f"({_pretty(small.name)}↔{_pretty(big.name)})²: a squared unit"
            out.append(NamedFactor(f, meaning))
            out.append(NamedFactor(1 / f, meaning))
    return out


def _ordered_pairs(dimension: str) -> list[tuple[Unit, Unit]]:
    """Pairs (larger unit, smaller unit) of one dimension."""
    us = units_of(dimension)
    return [(a, b) for a in us for b in us if a.to_si > b.to_si]


def _prefer_squares(dimension: str, factors: list[NamedFactor]) -> list[NamedFactor]:
    """For fluences, a squared length slip (beam size in mm) is the likelier story than a
    fluence printed per mm², so those are tried first."""
    if dimension != "fluence":
        return factors
    return sorted(factors, key=lambda nf: "squared" not in nf.meaning)


def units_of(dimension: str) -> list[Unit]:
    """The distinct units of one dimension."""
    return list({u.name: u for u in _UNITS.values() if u.dimension == dimension}.values())


def plausible_unit(value: float, unit: str, lo: float, hi: float) -> Unit | None:
    """Which other unit of ``unit``'s dimension would make |value| fall inside [lo, hi]
    (a range expressed in ``unit``). None when none does (or the value is already plausible).

    Example: lambda_meters holding 0.5 with range [1e-12, 1e-8] m → Å (0.5 Å = 5e-11 m).
    """
    declared = parse_unit(unit)
    mag = abs(value)
    if lo <= mag <= hi or not math.isfinite(mag) or mag == 0:
        return None
    centre = math.sqrt(lo * hi) if lo > 0 else hi
    best: tuple[float, Unit] | None = None
    for u in units_of(declared.dimension):
        if u.name == declared.name:
            continue
        as_declared = mag * u.to_si / declared.to_si
        if lo <= as_declared <= hi:
            # several units may fit a wide range; the one nearest the range's centre is likeliest
            dist = abs(math.log10(as_declared / centre)) if centre > 0 else 0.0
            if best is None or dist < best[0]:
                best = (dist, u)
    return best[1] if best else None


# Dimensions whose powers of ten are unit prefixes (m vs mm, Å⁻¹ vs m⁻¹, mm² vs m²), each with
# the powers its unit table spans; no other dimension gets "a unit prefix" for a power of ten.
PREFIX_DIMENSIONS = ("length", "inverse_length", "area", "volume")


def prefix_exponents(dimension: str) -> frozenset[int]:
    """Powers of ten that are a ratio of two units of ``dimension`` (or of the squared lengths
    of an area, the cubed lengths of a volume): what the unit table allows to call a prefix."""
    if dimension not in PREFIX_DIMENSIONS:
        return frozenset()
    power = {"area": 2, "volume": 3}.get(dimension, 1)
    base = "length" if dimension != "inverse_length" else "inverse_length"
    us = units_of(base)
    out = set()
    for a in us:
        for b in us:
            if a.name != b.name:
                k = math.log10(a.to_si / b.to_si) * power
                if abs(k - round(k)) < 1e-9:
                    out.add(round(k))
    return frozenset(out)


def explain_factor(ratio: float, dimension: str, rel: float = 1e-6) -> NamedFactor | None:
    """The named conversion that ``ratio`` (port/reference) equals within ``rel``, else None.

    A bare power of ten is "a unit prefix" only for a dimension with unit prefixes and only
    within the powers its unit table spans (see prefix_exponents); otherwise the caller says
    the ratio as a number, with no meaning attached.
    """
    if not math.isfinite(ratio) or ratio == 0:
        return None
    for nf in _prefer_squares(dimension, named_factors(dimension)):
        if math.isclose(ratio, nf.factor, rel_tol=rel):
            return nf
    k = round(math.log10(abs(ratio)))
    if k != 0 and ratio > 0 and math.isclose(ratio, 10.0**k, rel_tol=rel) and k in prefix_exponents(dimension):
        return NamedFactor(10.0**k, f"a factor 1e{k}: a unit prefix of 10^{k}")
    return None
