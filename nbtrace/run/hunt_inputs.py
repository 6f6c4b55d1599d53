"""What each side of a hunt was given and said it read: compared BEFORE any physics, since
an input difference (another structure-factor file, another detector) makes a physics
comparison meaningless until it is fixed."""

from __future__ import annotations

from dataclasses import dataclass

# Setup values both sides print (CONTRACTS §2.1) that describe the run's inputs and choices;
# a difference here is an input difference, reported before any physics.
PROVENANCE_KEYS = (
    "argv", "structure_factors", "dtype", "detector_convention", "pivot", "detector_pixels", "pixel_size_m",
    "distance_m", "oversample", "steps", "phisteps", "mosaic_domains", "sources", "thicksteps",
)
# Inputs whose difference makes the physics comparison meaningless until fixed.
DECISIVE_INPUTS = ("structure_factors", "detector_pixels", "argv")


@dataclass(frozen=True)
class InputDifference:
    key: str
    a: str | None
    b: str | None
    decisive: bool


def compare_provenance(meta_a: dict, meta_b: dict) -> tuple[tuple[InputDifference, ...], tuple[tuple[str, str], ...]]:
    """Compare what each side was given and said it read (setup block + capture meta)."""
    diffs, same = [], []
    derived = _derived_setup(meta_a)
    for key in PROVENANCE_KEYS:
        if key in derived:
            continue  # computed by the physics, so the diff engine judges it, not the input check
        va, vb = _prov_value(meta_a, key), _prov_value(meta_b, key)
        if va is None and vb is None:
            continue
        if _same_value(va, vb):
            same.append((key, va))
        elif va is not None and vb is not None:
            diffs.append(InputDifference(key, va, vb, key in DECISIVE_INPUTS))
        else:
            # one side silent about a key is only worth a note when it is decisive
            if key in ("structure_factors", "dtype"):
                diffs.append(InputDifference(key, va, vb, False))
    return tuple(diffs), tuple(same)


def _derived_setup(meta_a: dict) -> frozenset[str]:
    """Setup keys that are results, not inputs, for this run: the SAMPLE pivot rotates pix0
    first and derives the beam-path distance from it (tap_specs/nanobragg.yaml, pivot=SAMPLE)."""
    pivot = (_prov_value(meta_a, "pivot") or "").strip().upper()
    return frozenset({"distance_m"}) if pivot == "SAMPLE" else frozenset()


def _same_value(va: str | None, vb: str | None) -> bool:
    """Equal as text, or as numbers to 1e-12 relative (sides print %.17g vs repr: 2e-4 both ways)."""
    if va == vb:
        return True
    if va is None or vb is None:
        return False
    wa, wb = va.split(), vb.split()
    if len(wa) != len(wb):
        return False
    try:
        return all(abs(float(x) - float(y)) <= 1e-12 * max(abs(float(x)), abs(float(y))) for x, y in zip(wa, wb))
    except ValueError:
        return False


def _prov_value(meta: dict, key: str) -> str | None:
    setup = meta.get("setup") or {}
    if key == "argv":
        args = meta.get("nb_args")
        return " ".join(args) if args else None
    v = setup.get(key, meta.get(key))
    return None if v is None else str(v).strip()
