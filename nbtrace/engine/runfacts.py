"""What a run says about itself, for explaining a divergence: provenance (producer, argv,
structure factors), the factors a run explains (N per axis and N³, oversample², counts, 1/λ),
the detector geometry that turns an offset into pixels, and the comparison settings.

Each run factor names the tap dimensions it may explain: 1/λ explains a reciprocal vector, never
a source count that happens to equal it; N explains a lattice sum; counts explain accumulations.
"""

from __future__ import annotations

import math
import shlex

from nbtrace.engine.align import Alignment
from nbtrace.engine.compare import CompareSettings, Geometry
from nbtrace.engine.complete import PROVENANCE, block_ratio
from nbtrace.engine.model import TapRecord, Trace
from nbtrace.engine.units import NamedFactor

# Tap dimensions each kind of run factor may explain.
LATTICE = ("dimensionless",)  # F_latt_a … F_latt
INTENSITY = ("intensity", "photons")  # I_before_scaling (F²), I_pixel_final
ACCUMULATION = ("count",) + INTENSITY  # steps, and sums over subpixels / sources / φ / mosaic
WAVELENGTH = ("inverse_length", "length")  # reciprocal and real lattice vectors


def provenance(t: Trace, canon: tuple[str, ...]) -> dict:
    """What a side said about its run: setup provenance taps, then the trace's own metadata."""
    out: dict = {}
    for k in PROVENANCE:
        value = t.meta.get(k)
        if value is not None:
            # a capture sidecar may hold argv as a list
            out[k] = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    for r, c in zip(t.records, canon):
        if r.index.pixel is not None:
            break  # the setup block precedes every pixel
        if c in PROVENANCE:
            out[c] = text_of(r)
    return out


def text_of(r: TapRecord) -> str:
    if r.text is not None:
        return r.text.strip()
    return " ".join(f"{v:g}" for v in r.values)


def first_record(t: Trace, first: dict[str, int], name: str) -> TapRecord | None:
    """The first record of canonical tap ``name`` (``first``: Alignment.first_a or first_b)."""
    i = first.get(name)
    return None if i is None else t.records[i]


def setup_number(t: Trace, first: dict[str, int], name: str) -> float | None:
    r = first_record(t, first, name)
    if r is None or not r.values:
        return None
    return r.values[0]


def _argv_numbers(argv: str | None) -> dict[str, list[float]]:
    """Numeric flags of a nanoBragg command line: {"-N": [5.0], "-oversample": [2.0], ...}."""
    out: dict[str, list[float]] = {}
    if not argv:
        return out
    try:
        words = shlex.split(argv)
    except ValueError:
        words = argv.split()
    flag = None
    for w in words:
        if w.startswith("-") and not _is_number(w):
            flag = w
            out.setdefault(flag, [])
        elif flag is not None and _is_number(w):
            out[flag].append(float(w))
    return out


def _is_number(w: str) -> bool:
    try:
        float(w)
    except ValueError:
        return False
    return True


def run_factors(a: Trace, b: Trace, al: Alignment, context: dict, prov_a: dict) -> tuple[NamedFactor, ...]:
    """Factors a run explains (N per axis and N³, oversample², 1/λ ...), with what they mean."""
    out: list[NamedFactor] = []
    args = _argv_numbers(prov_a.get("argv"))
    N = context.get("N")
    if N is None and args.get("-N"):
        N = args["-N"][0]
    if N is None and all(args.get(f) for f in ("-Na", "-Nb", "-Nc")):
        N = tuple(args[f][0] for f in ("-Na", "-Nb", "-Nc"))
    if N is not None:
        Ns = tuple(float(n) for n in (N if isinstance(N, (tuple, list)) else (N, N, N)))
        for n in sorted(set(Ns)):
            if n > 1:
                out.append(NamedFactor(1 / n, f"×1/N per axis (N = {n:g}): a lattice-sum normalisation differs; config-derived factor", LATTICE))
                out.append(NamedFactor(n, f"×N per axis (N = {n:g}): a lattice-sum normalisation differs; config-derived factor", LATTICE))
        prod = math.prod(Ns)
        if prod > 1:
            desc = "·".join(f"{n:g}" for n in Ns)
            out.append(NamedFactor(1 / prod, f"×1/N³ overall (Na·Nb·Nc = {desc} = {prod:g}): one 1/N per axis; config-derived factor", LATTICE + INTENSITY))
            out.append(NamedFactor(prod, f"×N³ overall (Na·Nb·Nc = {desc} = {prod:g}); config-derived factor", LATTICE + INTENSITY))
            out.append(NamedFactor(1 / prod / prod, f"×1/N⁶ (= (1/N³)², Na·Nb·Nc = {prod:g}): the lattice normalisation, squared in an intensity", INTENSITY))
    out += _count_factors(a, b, al, context, args)
    ratio = block_ratio(al)
    if ratio is not None:
        what = (f"B printed {ratio:g}× as many subpixel blocks per pixel as A" if ratio > 1 else
                f"A printed {1 / ratio:g}× as many subpixel blocks per pixel as B")
        root = math.sqrt(ratio if ratio > 1 else 1 / ratio)
        sq = f" (oversample² ratio {root:g}²)" if abs(root - round(root)) < 1e-9 else ""
        out.append(NamedFactor(ratio, f"{what}{sq}: an accumulation-count factor", ACCUMULATION))
    out += _cell_factors(a, al)
    lam = setup_number(a, al.first_a, "lambda_meters")
    if lam and lam > 0:
        lam_a = lam * 1e10
        out.append(NamedFactor(1 / lam_a, f"×1/λ (λ = {lam_a:g} Å) ⇒ the wavelength factor applied again", WAVELENGTH))
        out.append(NamedFactor(lam_a, f"×λ (λ = {lam_a:g} Å) ⇒ a wavelength factor applied where it was not expected", WAVELENGTH))
    return tuple(out)


def _count_factors(a, b, al, context, args) -> list[NamedFactor]:
    out: list[NamedFactor] = []
    oa = setup_number(a, al.first_a, "oversample") or (args.get("-oversample") or [None])[0]
    ob = setup_number(b, al.first_b, "oversample")
    oc = context.get("oversample")
    if oa and ob and oa != ob:
        r = (ob / oa) * (ob / oa)  # not ** 2: a float power raises OverflowError (oversample 1e200)
        out.append(NamedFactor(r, f"= (oversample {ob:g} vs {oa:g})²: the sides sampled a different number of subpixels", ACCUMULATION))
        out.append(NamedFactor(ob / oa, f"= oversample {ob:g} vs {oa:g}", ACCUMULATION))
    for o in {float(v) for v in (oa, ob, oc) if v}:
        if o > 1:
            out.append(NamedFactor(o * o, f"= oversample² ({o:g}² = {o * o:g}): an accumulation-count factor", ACCUMULATION))
            out.append(NamedFactor(1 / (o * o), f"= 1/oversample² (1/{o * o:g}): an accumulation-count factor (one subpixel where all {o * o:g} were summed?)", ACCUMULATION))
            out.append(NamedFactor(o, f"= oversample ({o:g}): a per-axis subpixel count", ACCUMULATION))
    for key, what in (("sources", "number of sources"), ("phisteps", "number of φ steps"),
                      ("mosaic_domains", "number of mosaic domains")):
        v = context.get(key) or setup_number(a, al.first_a, key)
        if v and v > 1:
            out.append(NamedFactor(float(v), f"= {what} ({v:g}): an accumulation-count factor", ACCUMULATION))
            out.append(NamedFactor(1 / float(v), f"= 1/{what} (1/{v:g}): an accumulation-count factor", ACCUMULATION))
    return out


def _geometry(a: Trace, al: Alignment, context: dict) -> Geometry:
    px = context.get("pixel_size")
    if px is None:
        px = setup_number(a, al.first_a, "pixel_size_m")
    if px is None:
        bc = first_record(a, al.first_a, "beam_center_m")
        if bc is not None and "pixel_mm" in bc.labels:
            px = bc.values[bc.labels.index("pixel_mm")] * 1e-3
    fr, sr = first_record(a, al.first_a, "fdet_vec"), first_record(a, al.first_a, "sdet_vec")
    fdet = tuple(fr.values) if fr is not None and len(fr.values) == 3 else None
    sdet = tuple(sr.values) if sr is not None and len(sr.values) == 3 else None
    return Geometry(float(px) if px else None, fdet, sdet)


def _float32_side(context: dict, prov_a: dict, prov_b: dict) -> str | None:
    if str(context.get("dtype", "")).lower() == "float32":
        return "b"
    if "float32" in prov_b.get("dtype", ""):
        return "b"
    if "float32" in prov_a.get("dtype", ""):
        return "a"
    return None


def settings_for(a, b, al, spec, context, prov_a, prov_b, rtol, atol) -> CompareSettings:
    defaults = getattr(spec, "defaults", None) or {}
    return CompareSettings(
        rtol=rtol, atol=atol,
        default_rtol=float(defaults.get("rtol", 1e-9)), default_atol=float(defaults.get("atol", 0.0)),
        float32_side=_float32_side(context, prov_a, prov_b),
        run_factors=run_factors(a, b, al, context, prov_a),
        geometry=_geometry(a, al, context))


def _cell_factors(a: Trace, al: Alignment) -> list[NamedFactor]:
    """h = a·S formed with a reciprocal vector instead of the real one (incident 6) scales h by
    |a*|/|a| = 1/|a|² for an orthogonal cell: named from the reference's printed real vectors."""
    out = []
    for name in ("rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms"):
        r = first_record(a, al.first_a, name)
        if r is None or len(r.values) != 3:
            continue
        n2 = sum(v * v for v in r.values)
        if n2 > 0 and math.isfinite(n2):
            axis = name[4]
            out.append(NamedFactor(1 / n2, f"×1/|{axis}|² (|{axis}| = {math.sqrt(n2):g} Å): a reciprocal vector used "
                                           f"where the real one was expected (h = {axis}*·S instead of {axis}·S)",
                                   ("dimensionless",)))
    return out
