"""The flag table of the nanoBragg-compatible command line (:mod:`nbtrace.sim.cli`).

``FLAGS`` maps each flag, spelled exactly as nanoBragg spells it, to a handler that reads its
arguments from the token cursor and writes SimConfig fields (converted to SI units) into the
keyword dict; :func:`nbtrace.sim.cli.parse_args` walks argv through it and then checks the
values together. Torch-free, like the cli: ``nbsim -h`` must answer before torch loads.
"""

from __future__ import annotations

import math

from nbtrace.errors import UsageError
from nbtrace.sim.constants import HC_EV_ANGSTROM, RTD


_POSITIVE = frozenset({"-pixel", "-pixel_size", "-lambda", "-wave", "-distance", "-close_distance"})


class _Args:
    """Token cursor; every read names the flag in its error."""

    def __init__(self, argv: list[str]):
        self.argv, self.pos = argv, 0

    def word(self, flag: str, what: str = "an argument") -> str:
        if self.pos >= len(self.argv):
            raise UsageError(f"{flag} needs {what}", hint=f"write {flag} followed by {what}")
        tok = self.argv[self.pos]
        self.pos += 1
        return tok

    def num(self, flag: str) -> float:
        tok = self.word(flag, "a number")
        try:
            x = float(tok)
        except ValueError:
            raise UsageError(f"{flag} needs a number, got '{tok}'", hint=f"e.g. {flag} 1.5") from None
        if not math.isfinite(x):  # as the C reference: nan or inf would only make a NaN image
            above = " > 0" if flag in _POSITIVE else ""
            raise UsageError(f"{flag} must be a finite number{above}, got '{tok}'", hint=f"e.g. {flag} 1.5")
        return x

    def int_(self, flag: str) -> int:
        tok = self.word(flag, "an integer")
        try:
            return int(tok)
        except ValueError:
            raise UsageError(f"{flag} needs an integer, got '{tok}'", hint=f"e.g. {flag} 3") from None

    def vec(self, flag: str) -> tuple[float, float, float]:
        return (self.num(flag), self.num(flag), self.num(flag))


def _set(kw, **values):
    kw.update(values)


def _mm(x):
    return x / 1000.0


def _deg(x):
    return x / RTD


# a direction nanoBragg would silently turn into a zero vector (-polar_vector and -odet_vector
# have a meaning then: no polarization basis, an odet rebuilt from f × s)
_DIRECTIONS = ("fdet_vector", "sdet_vector", "beam_vector", "spindle_axis")


def _custom(name):
    def handler(a, kw, flag):
        v = a.vec(flag)
        if name in _DIRECTIONS and not any(v):
            raise UsageError(f"{flag} 0 0 0 is a zero vector, not a direction", hint=f"e.g. {flag} 0 0 1")
        kw[name] = v
        kw["convention"] = "CUSTOM"
    return handler


def _cell(a, kw, flag):
    vals = []
    while len(vals) < 6 and a.pos < len(a.argv) and not a.argv[a.pos].startswith("-"):
        vals.append(a.num(flag))
    if not vals:
        raise UsageError(f"{flag} needs up to 6 numbers", hint="e.g. -cell 100 100 100 90 90 90")
    kw["cell"] = tuple(vals[:3]) + tuple(_deg(x) for x in vals[3:])


def _misset(a, kw, flag):
    if a.pos < len(a.argv) and "rand" in a.argv[a.pos]:
        a.pos += 1
        kw["misset_random"] = True
        return
    kw["misset_random"] = False
    kw["misset"] = tuple(_deg(x) for x in a.vec(flag))


def _detector_abs(a, kw, flag):
    tok = a.word(flag, "a depth in µm (or inf)")
    try:
        depth = float(tok)
    except ValueError:
        raise UsageError(f"{flag} needs a number or 'inf', got '{tok}'", hint="e.g. -detector_abs 320") from None
    if math.isinf(depth) or depth == 0:
        _set(kw, mu=0.0, thickness=0.0)
    else:
        kw["mu"] = 1.0 / (depth * 1e-6)


def _pivot(a, kw, flag):
    tok = a.word(flag, "beam or sample").lower()
    if tok not in ("beam", "sample"):
        raise UsageError(f"-pivot needs 'beam' or 'sample', got '{tok}'", hint="e.g. -pivot sample")
    kw["pivot"] = tok.upper()


def _twotheta_axis(a, kw, flag):
    v = a.vec(flag)
    if not any(v):
        raise UsageError(f"{flag} 0 0 0 is a zero vector, not an axis", hint=f"e.g. {flag} 0 0 -1")
    _set(kw, twotheta_axis=v, convention="CUSTOM", twotheta=_deg(v[0]), pivot="SAMPLE")


def _roi(name):
    def handler(a, kw, flag):
        kw[name] = (a.int_(flag), a.int_(flag), a.int_(flag), a.int_(flag))
    return handler


def _trace_pixel(a, kw, flag):
    kw.setdefault("trace_pixels", [])
    kw["trace_pixels"].append((a.int_(flag), a.int_(flag)))


def _dtype(a, kw, flag):
    tok = a.word(flag, "float64 or float32")
    if tok not in ("float64", "float32"):
        raise UsageError(f"-dtype needs float64 or float32, got '{tok}'", hint="e.g. -dtype float32")
    kw["dtype"] = tok


def _inject(a, kw, flag):
    kw.setdefault("injections", [])
    kw["injections"].append(a.word(flag, "an injection name"))


def _shape(name):
    return lambda a, kw, flag: kw.__setitem__("shape", name)


def _num(name, conv=None):
    def handler(a, kw, flag):
        x = a.num(flag)
        kw[name] = conv(x) if conv else x
    return handler


def _int(name):
    return lambda a, kw, flag: kw.__setitem__(name, a.int_(flag))


def _word(name):
    return lambda a, kw, flag: kw.__setitem__(name, a.word(flag, "a file name"))


def _flag(**values):
    return lambda a, kw, flag: kw.update(values)


def _ignored(nargs):
    def handler(a, kw, flag):
        for _ in range(nargs):
            a.word(flag)
    return handler


def _unsupported(what):
    def handler(a, kw, flag):
        raise UsageError(f"{flag} is not supported by nbsim ({what})", hint="see simulator/README.md")
    return handler


def _pixels_both(a, kw, flag):
    n = a.int_(flag)
    _set(kw, detpixels_f=n, detpixels_s=n)


def _size_both(a, kw, flag):
    x = _mm(a.num(flag))
    _set(kw, detsize_f=x, detsize_s=x)


def _sample_all(a, kw, flag):
    x = _mm(a.num(flag))
    kw["sample_size"] = (x, x, x)


def _sample_axis(i):
    def handler(a, kw, flag):
        s = list(kw.get("sample_size", (0.0, 0.0, 0.0)))
        s[i] = _mm(a.num(flag))
        kw["sample_size"] = tuple(s)
    return handler


def _N(axis):
    def handler(a, kw, flag):
        n = list(kw.get("N", (1, 1, 1)))
        v = a.int_(flag)
        for i in (range(3) if axis is None else (axis,)):
            n[i] = v
        kw["N"] = tuple(n)
    return handler


def _pivoting(name, pivot, conv=_mm):
    def handler(a, kw, flag):
        kw[name] = conv(a.num(flag))
        kw["pivot"] = pivot
    return handler


def _convention(name, pivot):
    return lambda a, kw, flag: kw.update(convention=name, pivot=pivot)


def _both(n1, n2, conv):
    def handler(a, kw, flag):
        x = conv(a.num(flag))
        kw[n1] = x
        kw[n2] = x
    return handler


def _both_int(n1, n2):
    def handler(a, kw, flag):
        x = a.int_(flag)
        kw[n1] = x
        kw[n2] = x
    return handler


def _neg_seed(name):
    return lambda a, kw, flag: kw.__setitem__(name, -a.int_(flag))


def _energy(a, kw, flag):
    e = a.num(flag)
    if not e > 0:
        raise UsageError(f"-energy must be > 0 eV, got {e:g}", hint="e.g. -energy 12398.42 for 1 Å")
    kw["lambda0"] = (HC_EV_ANGSTROM / e) / 1e10


def _polar(a, kw, flag):
    # as in nanoBragg, -polar after -nopolar switches polarization back on
    _set(kw, polar=a.num(flag), polar_given=True, nopolar=False)


_UM = 1e-6
FLAGS = {
    "-hkl": _word("hkl_file"), "-mat": _word("mat_file"), "-cell": _cell, "-misset": _misset,
    "-default_F": _num("default_F"), "-N": _N(None), "-Na": _N(0), "-Nb": _N(1), "-Nc": _N(2),
    "-samplesize": _sample_all, "-sample_size": _sample_all, "-xtalsize": _sample_all, "-xtal_size": _sample_all,
    "-sample_thick": _sample_axis(0), "-sample_x": _sample_axis(0), "-xtal_thick": _sample_axis(0),
    "-xtal_x": _sample_axis(0), "-sample_width": _sample_axis(1), "-sample_y": _sample_axis(1),
    "-width": _sample_axis(1), "-xtal_width": _sample_axis(1), "-xtal_y": _sample_axis(1),
    "-sample_height": _sample_axis(2), "-sample_z": _sample_axis(2), "-height": _sample_axis(2),
    "-xtal_height": _sample_axis(2), "-xtal_z": _sample_axis(2),
    "-density": _ignored(1), "-sample_den": _ignored(1), "-MW": _ignored(1), "-molecules": _ignored(1),
    "-square_xtal": _shape("square"), "-round_xtal": _shape("round"), "-gauss_xtal": _shape("gauss"),
    "-tophat_xtal": _shape("tophat"), "-tophat_spots": _shape("tophat"), "-binary_spots": _shape("tophat"),
    "-fudge": _num("fudge"),
    "-lambda": _num("lambda0", lambda x: x / 1e10), "-wave": _num("lambda0", lambda x: x / 1e10),
    "-energy": _energy,
    "-dispersion": _num("dispersion", lambda x: x / 100.0), "-dispsteps": _int("dispsteps"),
    "-divergence": _both("hdivrange", "vdivrange", _mm), "-hdivrange": _num("hdivrange", _mm),
    "-vdivrange": _num("vdivrange", _mm), "-hdivstep": _num("hdivstep", _mm), "-vdivstep": _num("vdivstep", _mm),
    "-hdivsteps": _int("hdivsteps"), "-vdivsteps": _int("vdivsteps"), "-divsteps": _both_int("hdivsteps", "vdivsteps"),
    "-round_div": _flag(round_div=True), "-square_div": _flag(round_div=False), "-sourcefile": _word("sourcefile"),
    "-polar": _polar, "-nopolar": _flag(nopolar=True),
    "-polar_vector": _custom("polar_vector"), "-beam_vector": _custom("beam_vector"),
    "-spindle_axis": _custom("spindle_axis"), "-fdet_vector": _custom("fdet_vector"),
    "-sdet_vector": _custom("sdet_vector"), "-odet_vector": _custom("odet_vector"),
    "-twotheta_axis": _twotheta_axis, "-pix0_vector": lambda a, kw, f: (a.vec(f), kw.update(convention="CUSTOM")),
    "-fluence": _num("fluence"), "-flux": _num("flux"), "-exposure": _num("exposure"),
    "-beamsize": _num("beamsize", _mm), "-water": _num("water", lambda x: x * _UM),
    "-phi": _num("phi0", _deg), "-osc": _num("osc", _deg), "-phistep": _num("phistep", _deg),
    "-phisteps": _int("phisteps"),
    "-mosaic": _num("mosaic_spread", _deg), "-mosaic_spread": _num("mosaic_spread", _deg),
    "-mosaicity": _num("mosaic_spread", _deg),
    "-mosaic_domains": _int("mosaic_domains"), "-mosaic_dom": _int("mosaic_domains"),
    "-mosaic_seed": _neg_seed("mosaic_seed"), "-seed": _neg_seed("seed"), "-misset_seed": _neg_seed("misset_seed"),
    "-pixel": _num("pixel", _mm), "-pixel_size": _num("pixel", _mm), "-detpixels": _pixels_both,
    "-detpixels_f": _int("detpixels_f"), "-detpixels_x": _int("detpixels_f"),
    "-detpixels_s": _int("detpixels_s"), "-detpixels_y": _int("detpixels_s"),
    "-detsize": _size_both, "-detsize_f": _num("detsize_f", _mm), "-detsize_s": _num("detsize_s", _mm),
    "-distance": _pivoting("distance", "BEAM"), "-close_distance": _pivoting("close_distance", "SAMPLE"),
    "-Xbeam": _pivoting("Xbeam", "BEAM"), "-Ybeam": _pivoting("Ybeam", "BEAM"),
    "-Xclose": _pivoting("Xclose", "SAMPLE"), "-Yclose": _pivoting("Yclose", "SAMPLE"),
    "-ORGX": _pivoting("ORGX", "SAMPLE", float), "-ORGY": _pivoting("ORGY", "SAMPLE", float),
    "-pivot": _pivot,
    "-mosflm": _convention("MOSFLM", "BEAM"), "-denzo": _convention("DENZO", "BEAM"),
    "-adxv": _convention("ADXV", "BEAM"), "-xds": _convention("XDS", "SAMPLE"),
    "-dials": _convention("DIALS", "SAMPLE"),
    "-twotheta": _pivoting("twotheta", "SAMPLE", _deg),
    "-detector_rotx": _num("rotx", _deg), "-detector_roty": _num("roty", _deg), "-detector_rotz": _num("rotz", _deg),
    "-curved_det": _flag(curved=True), "-point_pixel": _flag(point_pixel=True),
    "-detector_abs": _detector_abs, "-detector_absorption": _detector_abs, "-detector_absorb": _detector_abs,
    "-detector_thick": _num("thickness", lambda x: x * _UM),
    "-detector_thicksteps": _int("thicksteps"), "-thicksteps": _int("thicksteps"),
    "-oversample": _int("oversample"), "-oversample_thick": _flag(oversample_thick=True),
    "-oversample_polar": _flag(oversample_polar=True), "-oversample_omega": _flag(oversample_omega=True),
    "-roi": _roi("roi"), "-dmin": _num("dmin", lambda x: x * 1e-10),
    "-interpolate": _flag(interpolate=True), "-nointerpolate": _flag(interpolate=False),
    "-floatfile": _word("floatfile"), "-floatimage": _word("floatfile"),
    "-intfile": _word("intfile"), "-intimage": _word("intfile"),
    "-pgmfile": _word("pgmfile"), "-pgmimage": _word("pgmfile"),
    "-noisefile": _word("noisefile"), "-noiseimage": _word("noisefile"),
    "-scale": _num("scale"), "-pgmscale": _num("pgmscale"), "-adc": _num("adc"),
    "-nonoise": _flag(noisefile=None), "-nopgm": _flag(pgmfile=None),
    "-stol": _ignored(1), "-4stol": _ignored(1), "-Q": _ignored(1), "-stolout": _ignored(1),
    "-coherent": _flag(), "-printout": _flag(), "-printout_pixel": _ignored(2),
    "-progress": _flag(progress=True), "-noprogress": _flag(progress=False),
    "-dump": _ignored(1),
    "-mask": _unsupported("SMV header ingestion"), "-img": _unsupported("SMV header ingestion"),
    "-trace_pixel": _trace_pixel, "-trace_roi": _roi("trace_roi"), "-trace_dump": _word("trace_dump"),
    "-dtype": _dtype, "-compile": _flag(compile=True), "-device": _word("device"),
    "-max_steps": _int("max_steps"), "-max_pixels": _int("max_pixels"), "--inject": _inject, "-inject": _inject,
}
