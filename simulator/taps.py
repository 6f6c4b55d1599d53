"""The tap recorder: selects pixels of the production pass and formats their taps.

Text dialect (``TRACE_PY:``) and npz region dumps follow docs/CONTRACTS.md §2 and §4. The
recorder only slices tensors the kernel already computed; it never re-derives physics.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch

import nbtrace.tap as tap_mod
from nbtrace.errors import UsageError
from nbtrace.sim.constants import R_E_SQR, RTD
from nbtrace.sim.vectors import dot

PREFIX = "TRACE_PY"

BLOCK_TAPS = (
    "pix0_vector_meters", "fdet_vec", "sdet_vec", "pixel_pos_meters", "R_distance_meters", "omega_pixel_sr",
    "close_distance_meters", "obliquity_factor", "diffracted_vec", "incident_vec", "lambda_meters",
    "lambda_angstroms", "scattering_vec_A_inv", "rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms",
    "rot_a_star_A_inv", "rot_b_star_A_inv", "rot_c_star_A_inv", "hkl_frac", "hkl_rounded", "F_latt_a",
    "F_latt_b", "F_latt_c", "F_latt", "F_cell",
)
SCALING_TAPS = (
    "I_before_scaling", "r_e_meters", "r_e_sqr", "fluence_photons_per_m2", "steps", "oversample_thick",
    "oversample_polar", "oversample_omega", "capture_fraction", "polar", "omega_pixel", "cos_2theta",
    "I_pixel_final", "floatimage_accumulated",
)
INT_TAPS = frozenset({"hkl_rounded", "steps", "oversample_thick", "oversample_polar", "oversample_omega"})


STATIC_TAPS = frozenset({
    "pix0_vector_meters", "fdet_vec", "sdet_vec", "close_distance_meters", "incident_vec", "lambda_meters",
    "lambda_angstroms", "rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms", "rot_a_star_A_inv",
    "rot_b_star_A_inv", "rot_c_star_A_inv", "r_e_meters", "r_e_sqr", "fluence_photons_per_m2", "steps",
    "oversample_thick", "oversample_polar", "oversample_omega",
})


def _np(x, n: int, static: bool = False) -> np.ndarray:
    """Tensor → float64 numpy array with a leading row axis of length n; a static value
    (the same for every pixel) is broadcast."""
    a = x.detach().to("cpu", torch.float64).numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float64)
    if static:
        return np.broadcast_to(a, (n,) + a.shape).copy()
    return a.reshape((n,) + a.shape[1:]).copy()


@dataclass
class _Chunk:
    keys: list
    blocks: list = field(default_factory=list)      # list of _Block, in the C's (layer, subpixel) order
    loops: dict = field(default_factory=dict)       # kind -> list of (label dict, {name: (n,)}, shown (n,))
    scaling: dict = field(default_factory=dict)


@dataclass
class _Block:
    """The taps of one (layer, subpixel) pass for the chunk's rows. ``shown`` maps a tap to the
    rows that print it (absent: every row): the real build prints the pass-0 taps only when
    source 0 passed the -dmin test, and F_cell only when that term was looked up."""

    at: tuple
    arrays: dict
    shown: dict
    phi: list      # (labels, {name: (n,)}, shown (n,)) per φ step: source 0, mosaic domain 0
    source2: tuple | None  # ({name: (n,)}, shown (n,)) of source index 2, φ step 0, domain 0


_KEY = 1 << 32  # (slow, fast) → one int64 key


class Recorder:
    """Records taps for ``pixels`` [(slow, fast), ...]. ``all_blocks`` keeps every
    (layer, subpixel) block and the loop taps (text traces); otherwise only block (0, 0, 0)."""

    def __init__(self, pixels, all_blocks: bool = True):
        self.pixels = [tuple(p) for p in pixels]
        self.wanted = {p: i for i, p in enumerate(self.pixels)}
        self.all_blocks = all_blocks
        self.chunks: list[_Chunk] = []
        self._keys: torch.Tensor | None = None

    def select(self, s_idx: torch.Tensor, f_idx: torch.Tensor):
        """A per-chunk view for the wanted rows of this pixel chunk, or None if there are none."""
        keys = s_idx.to(torch.int64) * _KEY + f_idx.to(torch.int64)
        if self._keys is None or self._keys.device != keys.device:
            self._keys = torch.tensor([s * _KEY + f for s, f in self.pixels], dtype=torch.int64, device=keys.device)
        rows = torch.nonzero(torch.isin(keys, self._keys)).reshape(-1)
        if rows.numel() == 0:
            return None
        chunk = _Chunk([(int(s), int(f)) for s, f in zip(s_idx[rows].tolist(), f_idx[rows].tolist())])
        self.chunks.append(chunk)
        return _ChunkView(self, chunk, rows)

    def absorb(self, *others) -> None:
        """Take over the recorded chunks of other recorders (None skipped): one recorder for
        pixels traced in different passes of the same setup (-trace_pixels_after)."""
        for other in others:
            if other is not None:
                self.chunks.extend(other.chunks)

    def by_pixel(self) -> dict:
        """(s, f) -> (chunk, row) for every recorded pixel."""
        out = {}
        for chunk in self.chunks:
            for row, key in enumerate(chunk.keys):
                out[key] = (chunk, row)
        return out


# taps of the first pass (source 0, φ step 0, mosaic domain 0), evaluated after the -dmin test
AFTER_DMIN = ("rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms", "hkl_frac", "hkl_rounded",
              "F_latt_a", "F_latt_b", "F_latt_c", "F_latt", "F_cell")
LATTICE_TAPS = ("F_latt_a", "F_latt_b", "F_latt_c", "F_latt")
FIRST = (slice(None), 0, 0, 0)


def _looked_up(setup, blk, at) -> torch.Tensor:
    """Rows whose term at ``at`` reached the F_cell lookup: the C skips it when F_latt == 0
    (without water) or when -dmin removed the source."""
    ok = torch.ones(blk.h[at].shape, dtype=torch.bool, device=blk.h.device)
    if setup.cfg.water == 0:
        ok = ok & (blk.latt.total[at] != 0.0)
    if blk.keep is not None:
        ok = ok & blk.keep[at[0], at[1]]
    return ok


def _bool(x, n: int) -> np.ndarray:
    return x.detach().cpu().numpy().reshape(n).astype(bool) if torch.is_tensor(x) else np.full(n, bool(x))


class _ChunkView:
    def __init__(self, parent: Recorder, chunk: _Chunk, rows: torch.Tensor):
        self.parent, self.chunk, self.rows = parent, chunk, rows

    def block(self, t, ss, sf, setup, blk, F, omega, cap, I, polar=None, pol_src=None):
        """One (layer, subpixel) pass, gated as the real instrumented nanoBragg prints it
        (../shared/design/trace-format.md, Quirks 2): geometry and source 0's beam for every
        subpixel, the rotated cell, h, k, l, F_latt* and F_cell of the first pass (source 0,
        φ step 0, mosaic domain 0), Ω as cached for the pixel (the value the image uses)."""
        first = t == 0 and ss == 0 and sf == 0
        if not (first or self.parent.all_blocks):
            return
        r, n = self.rows, len(self.rows)
        det, src, cr = setup.detector, setup.sources, setup.crystal
        at = (r, 0, 0, 0)
        hkl = torch.stack((blk.h[at], blk.k[at], blk.l[at]), dim=-1)
        vals = {
            "pix0_vector_meters": det.pix0, "fdet_vec": det.fdet, "sdet_vec": det.sdet,
            "pixel_pos_meters": torch.stack(blk.pos, -1)[r], "R_distance_meters": blk.R[r],
            "omega_pixel_sr": omega[r],
            "close_distance_meters": det.close_distance, "obliquity_factor": det.close_distance / blk.R[r],
            "diffracted_vec": torch.stack(blk.d, -1)[r], "incident_vec": src.incident[0], "lambda_meters": src.wavelength[0],
            "lambda_angstroms": src.wavelength[0] * 1e10, "scattering_vec_A_inv": torch.stack(blk.q, -1)[r, 0],
            "rot_a_angstroms": setup.vectors[0, 0, 0] * 1e10, "rot_b_angstroms": setup.vectors[1, 0, 0] * 1e10,
            "rot_c_angstroms": setup.vectors[2, 0, 0] * 1e10, "rot_a_star_A_inv": cr.a_star,
            "rot_b_star_A_inv": cr.b_star, "rot_c_star_A_inv": cr.c_star, "hkl_frac": hkl,
            "hkl_rounded": torch.ceil(hkl - 0.5), "F_latt_a": blk.latt.a[at], "F_latt_b": blk.latt.b[at],
            "F_latt_c": blk.latt.c[at], "F_latt": blk.latt.total[at], "F_cell": F[at],
        }
        arrays = {k: _np(v, n, k in STATIC_TAPS) for k, v in vals.items()}
        kept = _bool(blk.keep[r, 0], n) if blk.keep is not None else np.ones(n, dtype=bool)
        shown = {name: kept for name in AFTER_DMIN}
        square = setup.cfg.shape == "square"
        if not square:
            for name in LATTICE_TAPS:
                shown[name] = np.zeros(n, dtype=bool)
        shown["F_cell"] = _bool(_looked_up(setup, blk, at), n)
        phi = []
        if square and self.parent.all_blocks:
            for m in range(blk.h.shape[2]):
                pm = (r, 0, m, 0)
                phi.append(({"phi_tic": m, "phi_deg": float(setup.phis[m]) * RTD}, {
                    "k_frac": _np(blk.k[pm], n), "F_latt_b": _np(blk.latt.b[pm], n),
                    "F_latt": _np(blk.latt.total[pm], n)}, kept))
        source2 = None
        if blk.h.shape[1] > 2 and self.parent.all_blocks:
            source2 = self._source2(setup, blk, F, polar, pol_src)
        self.chunk.blocks.append(_Block((t, ss, sf), arrays, shown, phi, source2))
        if self.parent.all_blocks:
            if first:
                self._loops(setup, blk)
            if det.thicksteps > 1 and ss == setup.oversample - 1 and sf == setup.oversample - 1:
                self.chunk.loops.setdefault("LAYER", []).append(
                    ({"layer": t}, {"capture_fraction": _np(cap[r], n)}, np.ones(n, dtype=bool)))

    def _source2(self, setup, blk, F, polar, pol_src):
        """The real build's per-subpixel lines of source index 2 (φ step 0, domain 0), printed
        once its term was looked up."""
        r, n = self.rows, len(self.rows)
        at = (r, 2, 0, 0)
        Fc, Fl = F[at], blk.latt.total[at]
        if setup.cfg.oversample_polar and pol_src is not None:
            pol = pol_src[r, 2]
        else:
            pol = polar[r] if polar is not None else torch.zeros(n, dtype=torch.float64)
        inc = setup.sources.incident[2]
        d = torch.stack(blk.d, -1)[r]
        vals = {
            "F_cell": Fc, "F_latt": Fl, "F_cell_squared": Fc * Fc, "F_latt_squared": Fl * Fl,
            "I_contribution": Fc * Fc * Fl * Fl, "polar": pol, "cos2theta": dot(inc, d),
            "lambda_angstroms": _np(setup.sources.wavelength[2] * 1e10, n, True), "source_index": np.full(n, 2.0),
        }
        return {k: _np(v, n) for k, v in vals.items()}, _bool(_looked_up(setup, blk, at), n)

    def _loops(self, setup, blk):
        """Loop taps of the first (layer, subpixel) block, indexed so that none takes the place
        of a tap the real build prints: per mosaic domain (source 0, φ step 0) and per source
        (φ step 0, domain 0), each shown where that source passed the -dmin test."""
        r, n = self.rows, len(self.rows)
        lat = blk.latt
        keep = (lambda j: _bool(blk.keep[r, j], n)) if blk.keep is not None else (lambda j: np.ones(n, dtype=bool))
        if blk.h.shape[3] > 1:
            self.chunk.loops["MOS"] = [({"mos_tic": d, "phi_tic": 0}, {
                "h_frac": _np(blk.h[r, 0, 0, d], n), "k_frac": _np(blk.k[r, 0, 0, d], n),
                "l_frac": _np(blk.l[r, 0, 0, d], n), "F_latt": _np(lat.total[r, 0, 0, d], n)}, keep(0))
                for d in range(blk.h.shape[3])]
        if blk.h.shape[1] > 1:
            src = setup.sources
            self.chunk.loops["SOURCE"] = [({"source": j, "phi_tic": 0, "mos_tic": 0}, {
                "lambda_meters": _np(src.wavelength[j], n, True), "incident_x": _np(src.incident[j, 0], n, True),
                "incident_y": _np(src.incident[j, 1], n, True), "incident_z": _np(src.incident[j, 2], n, True),
                "h_frac": _np(blk.h[r, j, 0, 0], n), "k_frac": _np(blk.k[r, j, 0, 0], n),
                "l_frac": _np(blk.l[r, j, 0, 0], n), "F_latt": _np(lat.total[r, j, 0, 0], n)}, keep(j))
                for j in range(blk.h.shape[1])]

    def scaling(self, setup, I, cap, polar, omega, blk, v):
        r, n = self.rows, len(self.rows)
        cfg = setup.cfg
        I_rep = _np(I[r], n)
        if cfg.has("trace-one-subpixel"):
            # incident 20: the trace tool accumulated one subpixel's share, not all oversample²
            I_rep = I_rep / (setup.oversample * setup.oversample)
        vals = {
            "I_before_scaling": I_rep, "r_e_meters": math.sqrt(R_E_SQR), "r_e_sqr": R_E_SQR,
            "fluence_photons_per_m2": setup.fluence, "steps": setup.steps,
            "oversample_thick": int(cfg.oversample_thick), "oversample_polar": int(cfg.oversample_polar),
            "oversample_omega": int(cfg.oversample_omega), "capture_fraction": cap[r], "polar": polar[r],
            "omega_pixel": omega[r], "cos_2theta": dot(setup.sources.incident[-1], torch.stack(blk.d, -1)[r]),
            "I_pixel_final": v[r], "floatimage_accumulated": v[r].to(torch.float32),
        }
        self.chunk.scaling = {k: _np(x, n, k in STATIC_TAPS) for k, x in vals.items()}


# ------------------------------------------------------------------------- formatting


def fmt(x) -> str:
    """%.17g-equivalent round-trip text for a float (repr), integers as integers."""
    return repr(float(x))


def _fmt_tap(name: str, value: np.ndarray) -> str:
    flat = np.atleast_1d(value)
    if name in INT_TAPS:
        text = " ".join(str(int(v)) if math.isfinite(v) else fmt(v) for v in flat)
    else:
        text = " ".join(fmt(v) for v in flat)
    return f"{PREFIX}: {name} {text}"


def _beam0(given, derived):
    """Fbeam/Sbeam as the real build prints them: the BEAM pivot's input to pix0 (before the
    detector rotations), else the value derived back from the rotated detector."""
    return float(given) if given is not None else float(derived)


def setup_lines(setup, argv, dtype_name: str) -> list[str]:
    """The §2.1 `=` block."""
    det = setup.detector
    vec = lambda t: " ".join(fmt(x) for x in t.detach().cpu().tolist())  # noqa: E731
    sf = setup.table.describe()
    return [f"{PREFIX}:{k}={v}" for k, v in (
        ("producer", "nbtrace-simulator 0.1.0"), ("dtype", dtype_name), ("argv", " ".join(argv)),
        ("structure_factors", sf), ("detector_convention", det.convention), ("pivot", det.pivot),
        ("detector_pixels", f"{det.fpixels} {det.spixels}"), ("pixel_size_m", fmt(det.pixel)),
        ("distance_m", fmt(_beam0(det.distance0, det.distance))), ("Fbeam_m", fmt(_beam0(det.Fbeam0, det.Fbeam))),
        ("Sbeam_m", fmt(_beam0(det.Sbeam0, det.Sbeam))),
        ("pix0_vector", vec(det.pix0)), ("oversample", setup.oversample), ("steps", setup.steps),
        ("phisteps", setup.phi.steps), ("mosaic_domains", setup.domains),
        ("sources", setup.sources.incident.shape[0]), ("thicksteps", det.thicksteps),
    )]


GEOMETRY_TAPS = BLOCK_TAPS[:13]
PASS0_TAPS = BLOCK_TAPS[13:21]


def _loop_line(kind: str, labels: dict, vals: dict, row: int) -> str:
    parts = [f"{k}={v if isinstance(v, int) else fmt(v)}" for k, v in labels.items()]
    parts += [f"{k}={fmt(v[row])}" for k, v in vals.items()]
    return f"{PREFIX}_{kind} " + " ".join(parts)


def _block_lines(b: _Block, row: int) -> list[str]:
    """One (layer, subpixel) block in the real build's print order."""
    on = lambda name: name not in b.shown or bool(b.shown[name][row])  # noqa: E731
    lines = [_fmt_tap(name, b.arrays[name][row]) for name in GEOMETRY_TAPS]
    lines += [_fmt_tap(name, b.arrays[name][row]) for name in PASS0_TAPS if on(name)]
    lines += [_fmt_tap(name, b.arrays[name][row]) for name in LATTICE_TAPS if on(name)]
    phi = [_loop_line("PHI", labels, vals, row) for labels, vals, shown in b.phi if shown[row]]
    lines += phi[:1]
    if on("F_cell"):
        lines.append(_fmt_tap("F_cell", b.arrays["F_cell"][row]))
    lines += phi[1:]
    if b.source2 is not None and b.source2[1][row]:
        # the index follows the family's own prefix, the indexed loop form nbtrace reads
        for name, vals in b.source2[0].items():
            value = int(vals[row]) if name == "source_index" else fmt(vals[row])
            lines.append(f"{PREFIX}_SOURCE 2: {name} {value}")
    return lines


def pixel_lines(recorder: Recorder, pixel) -> list[str]:
    """The §2.2/§2.3 lines of one recorded pixel, in contract order."""
    chunk, row = recorder.by_pixel()[tuple(pixel)]
    lines = [f"TRACE_CONFIG: tracing pixel (spixel={pixel[0]}, fpixel={pixel[1]})"]
    for b in chunk.blocks:
        lines += _block_lines(b, row)
    for kind in ("MOS", "SOURCE", "LAYER"):
        lines += [_loop_line(kind, labels, vals, row) for labels, vals, shown in chunk.loops.get(kind, ()) if shown[row]]
    lines += [_fmt_tap(name, chunk.scaling[name][row]) for name in SCALING_TAPS]
    return lines


def write_npz(recorder: Recorder, roi, path: str, meta: dict) -> None:
    """§4: one (ny, nx[, 3]) float64 array per per-pixel tap, plus roi and meta_json."""
    xmin, xmax, ymin, ymax = roi
    ny, nx = ymax - ymin + 1, xmax - xmin + 1
    arrays: dict[str, np.ndarray] = {}
    for chunk in recorder.chunks:
        ss = np.array([k[0] for k in chunk.keys]) - ymin
        ff = np.array([k[1] for k in chunk.keys]) - xmin
        first = chunk.blocks[0]
        for name, vals in list(first.arrays.items()) + list(chunk.scaling.items()):
            if name not in arrays:
                arrays[name] = np.full((ny, nx) + vals.shape[1:], np.nan)
            shown = first.shown.get(name)
            if shown is None:
                arrays[name][ss, ff] = vals
            else:  # a tap the first block does not print stays NaN, as the C reference leaves it
                arrays[name][ss[shown], ff[shown]] = vals[shown]
    arrays["roi"] = np.array([xmin, xmax, ymin, ymax], dtype=np.int64)
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    try:
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    except OSError as exc:
        raise UsageError(f"cannot write the tap dump: {exc.strerror}", where=path,
                         hint="check that the folder exists and is writable") from None


# ------------------------------------------------------------------------- replay (isolation)
# With a session whose replay taps name a kernel value, that value is replaced at the traced
# pixels by the reference's (nbtrace.tap replay) and the kernel goes on from it. The reference
# prints these taps for the first pass (source 0, φ step 0, mosaic domain 0), so only that
# element of each pixel is replaced. Without such a session each hook is one dictionary lookup.


def _replays(name: str) -> bool:
    s = tap_mod.current()
    return s is not None and name in s.replay_taps


def _first(x: torch.Tensor) -> tuple:
    return (slice(None),) + (0,) * (x.dim() - 1)


def replay_scalar(name: str, x: torch.Tensor, pix) -> torch.Tensor:
    """x (P[, S, Φ, D]) with its first-pass element replaced at the traced pixels."""
    if not _replays(name):
        return x
    at = _first(x)
    first = x[at]
    new = tap_mod.tap(name, first, pixel_axes=0, pixels=pix)
    if new is first:
        return x
    out = x.clone()
    out[at] = new
    return out


def replay_vector(name: str, comps: tuple, pix) -> tuple:
    """The 3 components (each P[, S, Φ, D]) of a vector tap, first pass replaced as one 3-vector."""
    if not _replays(name):
        return comps
    at = _first(comps[0])
    first = torch.stack([c[at] for c in comps], dim=-1)
    new = tap_mod.tap(name, first, pixel_axes=0, pixels=pix)
    if new is first:
        return comps
    out = []
    for i, c in enumerate(comps):
        c = c.clone()
        c[at] = new[:, i]
        out.append(c)
    return tuple(out)


def replay_lattice(latt: tuple, N, pix) -> tuple:
    """F_latt_a/b/c replaced (their product F_latt recomputed as the kernel forms it), then F_latt."""
    fa, fb, fc, total = latt
    if any(_replays(n) for n in ("F_latt_a", "F_latt_b", "F_latt_c")):
        fa, fb, fc = (replay_scalar(n, f, pix) for n, f in zip(("F_latt_a", "F_latt_b", "F_latt_c"), (fa, fb, fc)))
        from nbtrace.sim.lattice import _assemble

        total = _assemble(fa, [f if n > 1 else None for f, n in zip((fa, fb, fc), N)]).total
    return fa, fb, fc, replay_scalar("F_latt", total, pix)


def replay_session(cfg):
    """The replay session NBTRACE_REPLAY / NBTRACE_REPLAY_TAPS ask for (traced pixels: the run's
    -trace_pixel ones), or a null context. Its records are not printed: the trace comes from the
    recorder, which sees the replaced values."""
    import contextlib
    import os

    ref = os.environ.get("NBTRACE_REPLAY", "").strip()
    names = [t.strip() for t in os.environ.get("NBTRACE_REPLAY_TAPS", "").split(",") if t.strip()]
    if not ref and not names:
        return contextlib.nullcontext()
    if not ref:
        raise UsageError("NBTRACE_REPLAY_TAPS is set but NBTRACE_REPLAY is not",
                         hint="NBTRACE_REPLAY=ref.log names the reference trace")
    unknown = sorted(set(names) - set(REPLAYABLE))
    if unknown:
        # said, not refused: `nbtrace isolate` sees the tap still diverge and calls that stage inconclusive
        import sys

        sys.stderr.write(f"nbsim: warning: the simulator cannot replay {', '.join(unknown)}; they keep their own "
                         f"values (replayable: {', '.join(REPLAYABLE)})\n")
        names = [n for n in names if n in REPLAYABLE]
    if not cfg.trace_pixels:
        raise UsageError("replay needs traced pixels", hint="add -trace_pixel S F (the reference's pixels)")
    return tap_mod.session(pixels=cfg.trace_pixels, replay=ref, replay_taps=names, out=None)


REPLAYABLE = ("diffracted_vec", "scattering_vec_A_inv", "hkl_frac", "F_latt_a", "F_latt_b", "F_latt_c", "F_latt",
              "I_before_scaling", "I_pixel_final")
