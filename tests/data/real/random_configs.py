"""Writes the argument lines of the 10 random configurations of tests/data/real (nothing else).

    python tests/data/real/random_configs.py > tests/data/real/random.args

Seeded (SEED below, Python's random.Random): the same 10 lines every time. Each line is a small
64x64 nanoBragg configuration that loops over several of: sources (dispersion, divergence),
phi steps (never at exactly phi = 0, where the original reuses a stale orientation), mosaic
domains, subpixels, sensor layers, the -oversample_* flags, polarization, detector rotations
and a triclinic misset cell.
"""

from __future__ import annotations

import random

SEED = 20261203
COUNT = 10


def one(rng: random.Random) -> str:
    a, b, c = (rng.choice([40, 50, 60, 70, 80]) for _ in range(3))
    al, be, ga = (rng.choice([90, 90, 85, 95, 100]) for _ in range(3))
    args = [f"-lambda {rng.choice([0.9, 1.0, 1.2, 1.5])}", f"-cell {a} {b} {c} {al} {be} {ga}",
            f"-N {rng.choice([3, 4, 5, 6])}", f"-default_F {rng.choice([50, 100])}",
            f"-distance {rng.choice([80, 100, 120])}", "-detpixels 64", f"-pixel {rng.choice([0.1, 0.12, 0.15])}"]
    if rng.random() < 0.5:
        args.append(f"-misset {rng.randint(-9, 9)} {rng.randint(-9, 9)} {rng.randint(-9, 9)}")
    if rng.random() < 0.5:
        args.append(f"-dispersion {rng.choice([2, 5, 10])} -dispsteps {rng.choice([2, 3, 4])}")
    if rng.random() < 0.4:
        args.append(f"-hdivrange {rng.choice([0.2, 0.4])} -vdivrange {rng.choice([0.2, 0.4])} -divsteps {rng.choice([2, 3])}")
    if rng.random() < 0.6:
        args.append(f"-phi {rng.choice([0.05, 0.5, -1.25, 10])} -osc {rng.choice([0.3, 1.0])} -phisteps {rng.choice([2, 3])}")
    if rng.random() < 0.5:
        args.append(f"-mosaic {rng.choice([0.2, 0.5, 1.0])} -mosaic_domains {rng.choice([2, 3, 5])}")
    if rng.random() < 0.5:
        args.append(f"-oversample {rng.choice([2, 3])}")
    else:
        args.append("-oversample 1")
    if rng.random() < 0.4:
        args.append(f"-detector_thick {rng.choice([50, 100, 300])} -thicksteps {rng.choice([2, 3])}")
    for flag in ("-oversample_thick", "-oversample_polar", "-oversample_omega"):
        if rng.random() < 0.2:
            args.append(flag)
    if rng.random() < 0.4:
        args.append(f"-polar {rng.choice([0.5, 0.8, 1.0])}")
    if rng.random() < 0.3:
        args.append(f"-detector_rotx {rng.choice([-3, 2])} -detector_roty {rng.choice([1, 4])} -twotheta {rng.choice([5, 10])}")
    return " ".join(args)


def main() -> None:
    rng = random.Random(SEED)
    for _ in range(COUNT):
        print(one(rng))


if __name__ == "__main__":
    main()
