"""The simulator's taps: which values of the production pass are printed, and where.

The recorder decides what the real instrumented nanoBragg would print for each traced pixel
and hands those tensors to :mod:`nbtrace.tap`, which selects the pixels, formats the text
dialect (``TRACE_PY:``, docs/CONTRACTS.md §2) and writes the npz region dump (§4). It only
slices tensors the kernel already computed; it never re-derives physics. The replay hooks at
the end let :mod:`nbtrace.tap` feed a reference's values into the kernel (``nbtrace isolate``).
"""

from __future__ import annotations

import math

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


_KEY = 1 << 32  # (slow, fast) → one int64 key
GEOMETRY_TAPS = BLOCK_TAPS[:13]
PASS0_TAPS = BLOCK_TAPS[13:21]


class Recorder:
    """Records taps for ``pixels`` [(slow, fast), ...] through an :mod:`nbtrace.tap` session
    (the public recorder every port uses: the simulator formats nothing itself). ``all_blocks``
    keeps every (layer, subpixel) block and the loop taps (a text trace); otherwise only block
    (0, 0, 0) and the scaling block, into the session's region (``pixels`` is then the whole
    rectangle of a -trace_roi)."""

    def __init__(self, pixels, all_blocks: bool = True):
        self.pixels = [tuple(p) for p in pixels]
        self.all_blocks = all_blocks
        if all_blocks:
            self.session = tap_mod.Session(self.pixels, prefix=PREFIX)
        else:
            ss, ff = [p[0] for p in self.pixels], [p[1] for p in self.pixels]
            self.session = tap_mod.Session((), roi=(min(ff), max(ff), min(ss), max(ss)), prefix=PREFIX)
        self._keys: torch.Tensor | None = None

    def select(self, s_idx: torch.Tensor, f_idx: torch.Tensor):
        """A per-chunk view for the wanted rows of this pixel chunk, or None if there are none."""
        keys = s_idx.to(torch.int64) * _KEY + f_idx.to(torch.int64)
        if self._keys is None or self._keys.device != keys.device:
            self._keys = torch.tensor([s * _KEY + f for s, f in self.pixels], dtype=torch.int64, device=keys.device)
        rows = torch.nonzero(torch.isin(keys, self._keys)).reshape(-1)
        if rows.numel() == 0:
            return None
        return _ChunkView(self, rows, (s_idx[rows], f_idx[rows]))

    def absorb(self, *others) -> None:
        """Take over the pixels recorded by other recorders (None skipped): one trace for pixels
        traced in different passes of the same setup (-trace_pixels_after)."""
        self.session.absorb(*(o.session for o in others if o is not None))


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
    """The traced rows of one pixel chunk: ``rows`` index the kernel's tensors, ``pix`` are
    their (slow, fast) indices, given to every tap (one selection per chunk in the session)."""

    def __init__(self, parent: Recorder, rows: torch.Tensor, pix):
        self.parent, self.rows, self.pix = parent, rows, pix
        self.later: list = []  # MOS / SOURCE / LAYER lines: printed after every block

    def _tap(self, name, value, where=None, static=False, loop=None, indexed=None):
        self.parent.session.tap(name, value, None if static else 0, self.pix, (0, 0), loop,
                                name in INT_TAPS or name == "source_index", where, indexed)

    def _line(self, loop, vals: dict, where, static=()):
        for name, value in vals.items():
            self._tap(name, value, where, name in static, loop=loop)

    def block(self, t, ss, sf, setup, blk, F, omega, cap, I, polar=None, pol_src=None):
        """One (layer, subpixel) pass, gated as the real instrumented nanoBragg prints it
        (docs/trace-format.md, Quirks 2): geometry and source 0's beam for every
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
        kept = _bool(blk.keep[r, 0], n) if blk.keep is not None else np.ones(n, dtype=bool)
        shown = {name: kept for name in AFTER_DMIN}
        square = setup.cfg.shape == "square"
        if not square:
            for name in LATTICE_TAPS:
                shown[name] = np.zeros(n, dtype=bool)
        shown["F_cell"] = _bool(_looked_up(setup, blk, at), n)
        for name in GEOMETRY_TAPS + PASS0_TAPS + LATTICE_TAPS:
            self._tap(name, vals[name], shown.get(name), name in STATIC_TAPS)
        phi = []
        if square and self.parent.all_blocks:
            for m in range(blk.h.shape[2]):
                pm = (r, 0, m, 0)
                phi.append(({"phi_tic": m, "phi_deg": float(setup.phis[m]) * RTD},
                            {"k_frac": blk.k[pm], "F_latt_b": blk.latt.b[pm], "F_latt": blk.latt.total[pm]}))
        for loop, lv in phi[:1]:
            self._line(loop, lv, kept)
        self._tap("F_cell", vals["F_cell"], shown["F_cell"])
        for loop, lv in phi[1:]:
            self._line(loop, lv, kept)
        if blk.h.shape[1] > 2 and self.parent.all_blocks:
            self._source2(setup, blk, F, polar, pol_src)
        if self.parent.all_blocks:
            if first:
                self._loops(setup, blk)
            if det.thicksteps > 1 and ss == setup.oversample - 1 and sf == setup.oversample - 1:
                self.later.append(({"layer": t}, {"capture_fraction": cap[r]}, None, ()))

    def _source2(self, setup, blk, F, polar, pol_src):
        """The real build's per-subpixel lines of source index 2 (φ step 0, domain 0), printed
        once its term was looked up; the index follows the family's own prefix (the indexed loop
        form nbtrace reads)."""
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
            "lambda_angstroms": setup.sources.wavelength[2] * 1e10, "source_index": 2,
        }
        where = _bool(_looked_up(setup, blk, at), n)
        for name, value in vals.items():
            self._tap(name, value, where, name in ("lambda_angstroms", "source_index"), indexed=("SOURCE", 2))

    def _loops(self, setup, blk):
        """Loop taps of the first (layer, subpixel) block, indexed so that none takes the place
        of a tap the real build prints: per mosaic domain (source 0, φ step 0) and per source
        (φ step 0, domain 0), each shown where that source passed the -dmin test."""
        r, n = self.rows, len(self.rows)
        lat = blk.latt
        keep = (lambda j: _bool(blk.keep[r, j], n)) if blk.keep is not None else (lambda j: None)
        if blk.h.shape[3] > 1:
            self.later += [({"mos_tic": d, "phi_tic": 0}, {
                "h_frac": blk.h[r, 0, 0, d], "k_frac": blk.k[r, 0, 0, d],
                "l_frac": blk.l[r, 0, 0, d], "F_latt": lat.total[r, 0, 0, d]}, keep(0), ())
                for d in range(blk.h.shape[3])]
        if blk.h.shape[1] > 1:
            src = setup.sources
            static = ("lambda_meters", "incident_x", "incident_y", "incident_z")
            self.later += [({"source": j, "phi_tic": 0, "mos_tic": 0}, {
                "lambda_meters": src.wavelength[j], "incident_x": src.incident[j, 0],
                "incident_y": src.incident[j, 1], "incident_z": src.incident[j, 2],
                "h_frac": blk.h[r, j, 0, 0], "k_frac": blk.k[r, j, 0, 0],
                "l_frac": blk.l[r, j, 0, 0], "F_latt": lat.total[r, j, 0, 0]}, keep(j), static)
                for j in range(blk.h.shape[1])]

    def scaling(self, setup, I, cap, polar, omega, blk, v):
        r = self.rows
        cfg = setup.cfg
        order = {"MOS": 0, "SOURCE": 1, "LAYER": 2}
        kind = lambda item: order["MOS" if "mos_tic" in item[0] and "source" not in item[0] else  # noqa: E731
                                  "SOURCE" if "source" in item[0] else "LAYER"]
        for loop, vals, where, static in sorted(self.later, key=kind):  # stable: each family in its order
            self._line(loop, vals, where, static)
        I_rep = I[r]
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
        for name in SCALING_TAPS:
            self._tap(name, vals[name], static=name in STATIC_TAPS)


# ------------------------------------------------------------------------- formatting


def fmt(x) -> str:
    """%.17g-equivalent round-trip text for a float (repr), integers as integers."""
    return repr(float(x))


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


def pixel_lines(recorder: Recorder, pixel) -> list[str]:
    """The §2.2/§2.3 lines of one recorded pixel, in contract order."""
    lines = recorder.session.lines_of(pixel)
    if lines is None:
        raise KeyError(tuple(pixel))
    return [f"TRACE_CONFIG: tracing pixel (spixel={pixel[0]}, fpixel={pixel[1]})", *lines]


def write_npz(recorder: Recorder, roi, path: str, meta: dict) -> None:
    """§4: one (ny, nx[, 3]) float64 array per per-pixel tap, plus roi and meta_json; a tap the
    first block does not print at a pixel stays NaN there, as the C reference leaves it."""
    from pathlib import Path

    s = recorder.session
    if s.roi != tuple(roi):
        raise ValueError(f"region {tuple(roi)} is not the recorder's {s.roi}")
    s.dump = Path(path)
    s.write_dump(meta)


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

    if tap_mod.current() is not None:  # NBTRACE_PIXELS / NBTRACE_ROI started one at import
        raise UsageError("nbsim takes its traced pixels from -trace_pixel and -trace_roi, not NBTRACE_PIXELS "
                         "or NBTRACE_ROI", hint="unset them; `nbtrace isolate --sim` drives the simulator")
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
