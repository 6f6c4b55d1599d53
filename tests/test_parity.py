"""C reference vs PyTorch simulator, over every configuration in tests/parity_cases.yaml.

One producer process per side renders the float image and traces four pixels (the strongest
spot, the brightest Bragg peak away from it, a background pixel, an edge pixel) in the same
pass. A case passes when the float32 images agree (correlation >= 0.999999, |sum ratio - 1|
<= 1e-6, computed in float64), each side's traced floatimage_accumulated equals its stored
pixel, and nbtrace's diff of the traces agrees with the default tap spec (1e-9 relative).

    python tests/test_parity.py --suggest [--write] [--c-bin PATH] [ID ...]
        pick the traced pixels from the C image (and rewrite them in the YAML)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from nbtrace.run.capture import CaptureResult, capture
from nbtrace.errors import ProducerError

HERE = Path(__file__).resolve().parent
CASES_FILE = HERE / "parity_cases.yaml"
DATA = HERE / "data" / "parity"

MIN_CORRELATION = 0.999999
MAX_SUM_RATIO_ERROR = 1e-6
MAX_BACKGROUND_FRACTION = 0.01
SPOT_RADIUS_PX = 6
PIXEL_ROLES = ("strongest", "peak", "background", "edge")
PRODUCER_TIMEOUT_S = 120


def load_cases() -> list[dict]:
    cases = yaml.safe_load(CASES_FILE.read_text())["cases"]
    ids = [c["id"] for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"{CASES_FILE}: duplicate case ids {sorted(duplicates)}")
    return cases


def nb_args(case: dict) -> list[str]:
    return case["args"].replace("{data}", str(DATA)).split()


def roi_of(args: list[str], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(xmin, xmax, ymin, ymax) inclusive from -roi (fast = x), else the whole detector."""
    spix, fpix = shape
    if "-roi" in args:
        i = args.index("-roi")
        return tuple(int(v) for v in args[i + 1 : i + 5])
    return (0, fpix - 1, 0, spix - 1)


@dataclass(frozen=True)
class Side:
    result: CaptureResult
    image: np.ndarray  # (spixels, fpixels) float64 copy of the float32 file


SIDE_NAMES = {"c": "the C reference", "py": "the PyTorch simulator"}


def capture_side(side: str, case: dict, tmp: Path) -> CaptureResult | ProducerError:
    """One producer run: image and the traces of the case's pixels from the same process."""
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        return capture(side, nb_args(case), pixels=[tuple(case[k]) for k in PIXEL_ROLES],
                       image=tmp / f"{side}.float", out_trace=tmp / f"{side}.trace",
                       dtype="float64" if side == "py" else None, timeout=PRODUCER_TIMEOUT_S)
    except ProducerError as exc:
        return exc


def load_side(side: str, case: dict, outcome: CaptureResult | ProducerError) -> Side:
    if isinstance(outcome, ProducerError):
        missing = [f for f in case.get("requires", []) if f in str(outcome)]
        if missing:
            pytest.fail(f"config {case['id']}: {' '.join(missing)} not implemented in {SIDE_NAMES[side]}: {outcome}",
                        pytrace=False)
        pytest.fail(f"config {case['id']}: {SIDE_NAMES[side]} failed: {outcome}", pytrace=False)
    flat = np.fromfile(outcome.image_path, dtype="<f4").astype(np.float64)
    if outcome.shape is None or flat.size != outcome.shape[0] * outcome.shape[1]:
        pytest.fail(f"config {case['id']}: {side} image has {flat.size} pixels, shape says {outcome.shape}",
                    pytrace=False)
    return Side(outcome, flat.reshape(outcome.shape))


@pytest.fixture(scope="module")
def parity_runs(request, tmp_path_factory) -> dict:
    """Every selected case's two producer runs, two at a time: a run is mostly interpreter and
    torch start-up on one core (capture sets OMP_NUM_THREADS=1), so two in flight halve the
    wall time on the 2-core CI without oversubscribing it."""
    from concurrent.futures import ThreadPoolExecutor

    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_parity" and hasattr(item, "callspec")]
    base = tmp_path_factory.mktemp("parity")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {(case["id"], side): pool.submit(capture_side, side, case, base / case["id"])
                   for case in selected for side in ("py", "c")}
        return {key: fut.result() for key, fut in futures.items()}


def image_problems(c: np.ndarray, py: np.ndarray) -> list[str]:
    if c.shape != py.shape:
        return [f"image shapes differ: C {c.shape} vs PY {py.shape}"]
    problems = []
    if not np.all(np.isfinite(py)) or not np.all(np.isfinite(c)):
        problems.append(f"non-finite pixels: C {int((~np.isfinite(c)).sum())}, PY {int((~np.isfinite(py)).sum())}")
        return problems
    if c.std() == 0 or py.std() == 0:
        problems.append(f"a flat image cannot be correlated (std C {c.std():.3g}, PY {py.std():.3g})")
    else:
        corr = float(np.corrcoef(c.ravel(), py.ravel())[0, 1])
        if not corr >= MIN_CORRELATION:
            problems.append(f"image correlation {corr:.9f} < {MIN_CORRELATION}")
    ratio = float(py.sum() / c.sum()) if c.sum() != 0 else float("nan")
    if not abs(ratio - 1) <= MAX_SUM_RATIO_ERROR:
        worst = np.unravel_index(np.argmax(np.abs(py - c)), c.shape)
        problems.append(f"sum ratio PY/C {ratio:.9g} (|r-1| > {MAX_SUM_RATIO_ERROR}); largest pixel difference "
                        f"at (s,f)={tuple(int(i) for i in worst)}: C {c[worst]:.9g}, PY {py[worst]:.9g}")
    return problems


def away_from_strongest(c: np.ndarray) -> np.ndarray:
    """Mask of pixels more than SPOT_RADIUS_PX from every pixel as bright as the strongest
    (usually the direct-beam (000) spot; MOSFLM's pixel-corner beam makes four equal ones)."""
    strong = np.argwhere(c >= c.max())
    ss, ff = np.indices(c.shape)
    far = np.ones(c.shape, dtype=bool)
    for s, f in strong:
        far &= (ss - s) ** 2 + (ff - f) ** 2 > SPOT_RADIUS_PX**2
    return far


def pick_pixels(c: np.ndarray, roi) -> dict[str, tuple[int, int]]:
    """strongest: the brightest C pixel; peak: the brightest Bragg peak away from it;
    background: a low pixel inside the ROI at the 10th percentile (not the minimum: the
    minimum sits on a zero of sin(N*pi*h), where the last bit of h decides the value)."""
    xmin, xmax, ymin, ymax = roi
    strongest = np.unravel_index(np.argmax(c), c.shape)
    far = away_from_strongest(c)
    peak = np.unravel_index(np.argmax(np.where(far, c, -np.inf)), c.shape)
    inner = np.zeros(c.shape, dtype=bool)
    inner[ymin + 2 : ymax - 1, xmin + 2 : xmax - 1] = True
    inner &= c < MAX_BACKGROUND_FRACTION * c.max()
    level = np.percentile(c[inner], 10)
    bg = np.unravel_index(np.argmin(np.where(inner, np.abs(c - level), np.inf)), c.shape)
    return {k: (int(v[0]), int(v[1])) for k, v in (("strongest", strongest), ("peak", peak), ("background", bg))}


def pixel_choice_problems(case: dict, c: np.ndarray, roi) -> list[str]:
    """The YAML's pixels must still be what they claim to be in the C image."""
    problems = []
    strongest, peak, bg, edge = (tuple(case[k]) for k in PIXEL_ROLES)
    vmax = float(c.max())
    if c[strongest] != vmax:
        problems.append(f"strongest {strongest} = {c[strongest]:.6g} is not the brightest C pixel ({vmax:.6g} at "
                        f"{tuple(int(i) for i in np.unravel_index(np.argmax(c), c.shape))})")
    far = away_from_strongest(c)
    best_far = float(np.max(np.where(far, c, -np.inf)))
    if not (far[peak] and c[peak] == best_far):
        problems.append(f"peak {peak} = {c[peak]:.6g} is not the brightest C pixel more than {SPOT_RADIUS_PX} px "
                        f"from the strongest spot ({best_far:.6g})")
    if not c[bg] < MAX_BACKGROUND_FRACTION * vmax:
        problems.append(f"background {bg} holds {c[bg]:.6g} >= {MAX_BACKGROUND_FRACTION:g} of the strongest pixel")
    xmin, xmax, ymin, ymax = roi
    on_border = edge[0] in (ymin, ymax) or edge[1] in (xmin, xmax)
    inside = ymin <= edge[0] <= ymax and xmin <= edge[1] <= xmax
    if not (on_border and inside):
        problems.append(f"edge {edge} is not on the border of the detector/ROI {roi}")
    if problems:
        problems.append(f"re-pick with: python tests/test_parity.py --suggest {case['id']}")
    return problems


def image_trace_problems(label: str, side: Side, trace) -> list[str]:
    """The traced pixels must come from the same pass as the image: the float32 value a side
    tapped as floatimage_accumulated is the value it stored."""
    problems = []
    tapped = {r.index.pixel: r.values[0] for r in trace.records
              if r.name == "floatimage_accumulated" and r.index.pixel is not None}
    for pixel in sorted(set(trace.pixels)):
        stored = side.image[pixel]
        if pixel not in tapped:
            problems.append(f"{label} trace has no floatimage_accumulated for pixel {pixel}")
        elif tapped[pixel] != stored:
            problems.append(f"{label} pixel {pixel}: traced floatimage_accumulated {tapped[pixel]!r} "
                            f"but the image holds {stored!r} (trace not from the image pass?)")
    return problems


def trace_problems(c: Side, py: Side, pixels) -> tuple[list[str], str]:
    from nbtrace.engine.diff import diff_traces
    from nbtrace.engine.parse import read_trace
    from nbtrace.engine.spec import default_spec

    trace_c, trace_py = read_trace(c.result.trace_path), read_trace(py.result.trace_path)
    result = diff_traces(trace_c, trace_py, default_spec())
    problems = image_trace_problems("C", c, trace_c) + image_trace_problems("PY", py, trace_py)
    if not result:
        why = result.root_cause.explanation if result.root_cause else result.headline
        problems.append(f"trace diff diverges: {why}")
    for label, seen in (("C", result.pixels_a), ("PY", result.pixels_b)):
        if sorted(set(seen)) != sorted(set(pixels)):
            problems.append(f"{label} traced pixels {list(seen)}, asked for {pixels}")
    # per-pixel taps are the contract (CONTRACTS.md §2.2-2.3); extra setup lines are provenance
    only_c = [u.tap for u in result.unmatched_a if u.whole_tap and u.first_index.pixel is not None]
    only_py = [u.tap for u in result.unmatched_b if u.whole_tap and u.first_index.pixel is not None]
    if only_c or only_py:
        problems.append(f"per-pixel taps printed by one side only: C {only_c}, PY {only_py}")
    return problems, result.headline


CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_parity(case, parity_runs):
    pixels = [tuple(case[k]) for k in PIXEL_ROLES]
    c = load_side("c", case, parity_runs[(case["id"], "c")])
    py = load_side("py", case, parity_runs[(case["id"], "py")])
    problems = [f"image: {p}" for p in image_problems(c.image, py.image)]
    problems += [f"pixels: {p}" for p in pixel_choice_problems(case, c.image, roi_of(nb_args(case), c.image.shape))]
    trace, headline = trace_problems(c, py, pixels)
    problems += trace
    if problems:
        pytest.fail(f"config {case['id']} ({case['covers']}):\n  " + "\n  ".join(problems)
                    + f"\n  diff headline: {headline}\n  traces: {c.result.trace_path} {py.result.trace_path}",
                    pytrace=False)


def test_the_checks_fail_on_an_injected_fault(tmp_path):
    """Guard against a matrix that cannot fail: the same checks, with the port's scattering
    vector given an extra 2*pi (incident 5), must flag the images and name the tap."""
    case = next(c for c in CASES if c["id"] == "mosflm-default")
    pixels = [tuple(case[k]) for k in PIXEL_ROLES]
    c = load_side("c", case, capture_side("c", case, tmp_path / "c"))
    bad = capture("py", nb_args(case), pixels=pixels, image=tmp_path / "py.float", out_trace=tmp_path / "py.trace",
                  inject=["svec-two-pi"], timeout=PRODUCER_TIMEOUT_S)
    py = load_side("py", case, bad)
    assert any("correlation" in p for p in image_problems(c.image, py.image))
    problems, headline = trace_problems(c, py, pixels)
    assert any("scattering_vec_A_inv" in p for p in problems), problems


def test_cases_cover_every_flag_family():
    """The issue asks for every flag family; keep the matrix from silently losing one."""
    text = " ".join(c["args"] for c in CASES)
    words = set(text.split())
    families = [
        ["-denzo"], ["-adxv"], ["-xds"], ["-dials"], ["-pivot"], ["-twotheta"],
        ["-detector_rotx", "-detector_roty", "-detector_rotz"], ["-misset"], ["-mat"], ["-hkl"],
        ["-phi", "-osc", "-phisteps"], ["-mosaic", "-mosaic_domains", "-mosaic_seed"],
        ["-dispersion", "-dispsteps"], ["-hdivrange", "-vdivrange", "-divsteps"], ["-polar"], ["-nopolar"],
        ["-oversample"], ["-oversample_thick", "-oversample_polar", "-oversample_omega"],
        ["-detector_thick", "-detector_abs", "-thicksteps"], ["-roi"], ["-point_pixel"],
        ["-round_xtal"], ["-gauss_xtal"], ["-tophat_spots"], ["-fluence"], ["-flux", "-exposure", "-beamsize"],
    ]
    missing = [f for fam in families for f in fam if f not in words]
    assert not missing, f"no parity case uses {missing}"
    assert len(CASES) >= 20
    triclinic = [c for c in CASES if "-cell" in c["args"] and " 90 90 90" not in c["args"]]
    assert triclinic, "no triclinic -cell case"
    n_small = [c["args"].split() for c in CASES]
    interp = [a for a in n_small if "-hkl" in a and "-N" in a and int(a[a.index("-N") + 1]) <= 2]
    nointerp = [a for a in n_small if "-hkl" in a and "-N" in a and int(a[a.index("-N") + 1]) > 2]
    assert interp and nointerp, "-hkl needs a case with N <= 2 (interpolation on) and one with N > 2"


# ---------------------------------------------------------------------------------------
# maintenance: pick the traced pixels from the C image


def suggest(case: dict, tmp: Path, c_bin: str | None = None) -> dict[str, tuple[int, int]]:
    res = capture("c", nb_args(case), image=tmp / "c.float", timeout=PRODUCER_TIMEOUT_S, c_bin=c_bin)
    img = np.fromfile(res.image_path, dtype="<f4").astype(np.float64).reshape(res.shape)
    picks = pick_pixels(img, roi_of(nb_args(case), img.shape))
    print(f"{case['id']}: " + ", ".join(f"{k} [{s}, {f}] ({img[s, f]:.4g})" for k, (s, f) in picks.items()))
    return picks


def write_picks(text: str, case_id: str, picks: dict[str, tuple[int, int]]) -> str:
    """Replace the strongest/peak/background lines of one case in the YAML text."""
    import re

    start = text.index(f"  - id: {case_id}\n")
    end = text.find("\n  - id: ", start + 1)
    end = len(text) if end < 0 else end
    block = text[start:end]
    block = re.sub(r"\n    (strongest|peak|background): \[[^\]]*\]", "", block)
    edge_at = block.index("\n    edge:")
    lines = "".join(f"\n    {k}: [{s}, {f}]" for k, (s, f) in picks.items())
    return text[:start] + block[:edge_at] + lines + block[edge_at:] + text[end:]


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Pick the traced pixels of parity cases from the C image.")
    parser.add_argument("--suggest", action="store_true", required=True)
    parser.add_argument("--write", action="store_true", help=f"update {CASES_FILE.name} in place")
    parser.add_argument("--c-bin", help="a C build other than the reference")
    parser.add_argument("ids", nargs="*")
    opts = parser.parse_args()
    text = CASES_FILE.read_text()
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            if not opts.ids or case["id"] in opts.ids:
                picks = suggest(case, Path(tmp), opts.c_bin)
                text = write_picks(text, case["id"], picks)
    if opts.write:
        CASES_FILE.write_text(text)
