#!/usr/bin/env python3
"""A tiny stand-in producer obeying docs/CONTRACTS.md §1-§4, for hunt tests that must not
depend on the real C build or the PyTorch simulator. Geometry: detector at -distance mm,
pixels of -pixel mm, beam at the centre; a fake lattice of spots on a 25 Å grid in q.

Faults (port side, ``--inject NAME``): ``svec-scale`` (scattering vector in Å⁻¹, ×1e-10),
``edge-geometry`` (pixel positions shifted 10 µm within 3 px of the detector edge),
``image-only`` (a 3x3 patch of the written image doubled, no tap changed).
"""
import json
import math
import sys

import numpy as np


def main(argv):
    opts = {"-distance": 100.0, "-pixel": 0.1, "-detpixels": 64.0, "-lambda": 1.0}
    pixels, inject, floatfile, roi, dump, prefix = [], [], None, None, None, "TRACE_C"
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in opts:
            opts[a] = float(argv[i + 1]); i += 2
        elif a == "-trace_pixel":
            pixels.append((int(argv[i + 1]), int(argv[i + 2]))); i += 3
        elif a == "--inject":
            inject.append(argv[i + 1]); i += 2
        elif a == "-floatfile":
            floatfile = argv[i + 1]; i += 2
        elif a == "-trace_roi":
            roi = [int(x) for x in argv[i + 1:i + 5]]; i += 5
        elif a == "-trace_dump":
            dump = argv[i + 1]; i += 2
        elif a == "--port":
            prefix = "TRACE_PY"; i += 1
        elif a == "-default_F":
            i += 2
        else:
            print(f"fake: error: unknown flag {a}", file=sys.stderr)
            return 2
    n = int(opts["-detpixels"])
    px = opts["-pixel"] / 1000
    dist = opts["-distance"] / 1000
    lam = opts["-lambda"] * 1e-10
    s, f = np.mgrid[0:n, 0:n].astype(float)
    taps = compute(s, f, n, px, dist, lam, inject)
    out = sys.stdout
    if pixels or roi:
        out.write(f"{prefix}:producer=fake 1.0\n{prefix}:dtype=float64\n{prefix}:argv={' '.join(argv)}\n"
                  f"{prefix}:structure_factors=default_F:100\n{prefix}:detector_pixels={n} {n}\n"
                  f"{prefix}:oversample=1\n{prefix}:steps=1\n")
    for ps, pf in pixels:
        out.write(f"TRACE_CONFIG: tracing pixel (spixel={ps}, fpixel={pf})\n")
        for name, arr in taps.items():
            v = np.atleast_1d(arr[ps, pf])
            out.write(f"{prefix}: {name} " + " ".join(repr(float(x)) for x in v) + "\n")
    if floatfile:
        image = taps["floatimage_accumulated"].copy()
        if "image-only" in inject:  # a fault after every tap: only the written image differs
            image[n // 4: n // 4 + 3, n // 4: n // 4 + 3] *= 2.0
        image.astype("<f4").tofile(floatfile)
    if roi:
        xmin, xmax, ymin, ymax = roi
        arrays = {k: v[ymin:ymax + 1, xmin:xmax + 1] for k, v in taps.items()}
        meta = json.dumps({"producer": "fake", "dtype": "float64", "argv": argv}).encode()
        np.savez(dump, roi=np.array(roi, dtype=np.int64), meta_json=np.frombuffer(meta, np.uint8), **arrays)
    return 0


def compute(s, f, n, px, dist, lam, inject):
    centre = n * px / 2
    pos = np.stack([np.full(s.shape, dist), (f + 0.5) * px - centre, centre - (s + 0.5) * px], -1)
    if "edge-geometry" in inject:
        edge = np.minimum(np.minimum(s, n - 1 - s), np.minimum(f, n - 1 - f)) < 3
        pos[edge, 1] += 1e-5
    r = np.linalg.norm(pos, axis=-1)
    diffracted = pos / r[..., None]
    svec = (diffracted - np.array([1.0, 0.0, 0.0])) / lam  # m^-1
    if "svec-scale" in inject:
        svec = svec * 1e-10
    hkl = svec * 25e-10
    near = hkl - np.round(hkl)
    flatt = np.exp(-60.0 * (near ** 2).sum(-1))
    image = 1000.0 * flatt * (dist / r) ** 3 + 1.0
    return {
        "pixel_pos_meters": pos, "R_distance_meters": r, "scattering_vec_A_inv": svec, "hkl_frac": hkl,
        "F_latt": flatt, "I_pixel_final": image, "floatimage_accumulated": image.astype(np.float32).astype(float),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
