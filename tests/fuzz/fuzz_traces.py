"""Fuzz the trace readers and the diff with random variants of real logs, in process.

    python tests/fuzz/fuzz_traces.py [-n 100000] [--seed 1] [--only I] [--keep DIR]

Each variant is one real log (tests/data/wild, tests/data/dialects) changed a few times at
random: bytes flipped, inserted or deleted, the file cut short, lines duplicated, removed or
swapped, numbers replaced by odd ones (1_00, 1e999, -nan, 5,000 digits, Fortran exponents),
prefixes and names changed, other encodings (UTF-16, Latin-1, a BOM, CRLF, NUL). The variant is
read (sometimes with a forced dialect or prefix) and diffed against the original. Any exception other than nbtrace's own error class (NbtraceError: a one-line refusal)
is a failure, printed with the seed and the variant's number; ``--only I`` replays one variant
(``--keep DIR`` writes it out). Variant I depends only on (seed, I), never on the ones before.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

from nbtrace.errors import NbtraceError
from nbtrace.engine.diff import diff_traces
from nbtrace.engine.parse import read_trace
from nbtrace.engine.spec import default_spec

DATA = Path(__file__).resolve().parents[1] / "data"
MAX_SOURCE_BYTES = 20_000  # small logs keep a variant to milliseconds
ODD_NUMBERS = [b"1_00", b"1e999", b"-1e999", b"-nan", b"nan", b"inf", b"-0", b"0x10", b"1.2e", b"1.5D+00",
               b"\xc2\xb2", b"\xef\xbc\x91", b"9" * 5000, b"1" * 300 + b"x", b"0" * 2000, b".", b"-", b"+.5",
               b"1e-320", b"4.9e-324", b"1.7976931348623157e+308", b"12345678901234567890123", b"1,5", b""]
ODD_WORDS = [b"TRACE_C:", b"TRACE_PY:", b"TRACE:", b"TRACE_C_PHI", b"TRACE_PY_SOURCE 2:", b"TRACE_CONFIG:",
             b"TRACE_C_SOURCE2:", b"TRACE_PHI", b"=", b"[1 0 0; 0 1 0]", b"X:1 Y:2", b"phi_tic=", b"|a| =",
             b"spixel=", b"fpixel=" + b"9" * 30, b"F.cell", b"F_c\xc3\xa9ll", b"{", b'{"name": "a", "values": [1]}',
             b"--- a", b"+++ b", b"\t", b"  ", b"\r", b"\x00", b"\xff", b"\xe2\x80\xa8"]


def sources() -> list[tuple[str, bytes]]:
    files = sorted([*DATA.glob("wild/*.log"), *DATA.glob("wild/corpus/*"), *DATA.glob("dialects/*")])
    out = []
    for p in files:
        if p.suffix == ".tsv" or not p.is_file() or p.stat().st_size > MAX_SOURCE_BYTES:
            continue
        data = p.read_bytes()
        if b"TRACE" in data or p.suffix == ".jsonl":
            out.append((str(p.relative_to(DATA)), data))
    return out


def _mutate(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    kind = rng.randrange(12)
    if kind == 0 and data:  # flip, insert or delete bytes
        buf = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(buf)) if buf else 0
            op = rng.randrange(3)
            if op == 0 and buf:
                buf[at] ^= 1 << rng.randrange(8)
            elif op == 1:
                buf[at:at] = bytes([rng.randrange(256)])
            elif buf:
                del buf[at]
        return bytes(buf)
    if kind == 1:  # cut short anywhere
        return data[:rng.randrange(len(data) + 1)]
    if kind == 2 and lines:  # duplicate, remove or swap lines
        for _ in range(rng.randint(1, 5)):
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            op = rng.randrange(3)
            if op == 0:
                lines.insert(j, lines[i])
            elif op == 1 and len(lines) > 1:
                del lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    if kind in (3, 4) and lines:  # odd numbers in place of tokens
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(lines))
            toks = lines[i].split(b" ")
            toks[rng.randrange(len(toks))] = rng.choice(ODD_NUMBERS)
            lines[i] = b" ".join(toks)
        return b"\n".join(lines)
    if kind == 5 and lines:  # odd words: prefixes, forms, separators
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(lines))
            toks = lines[i].split(b" ")
            toks.insert(rng.randrange(len(toks) + 1), rng.choice(ODD_WORDS))
            lines[i] = b" ".join(toks)
        return b"\n".join(lines)
    if kind == 6:  # prefixes renamed on some lines
        old, new = rng.choice([(b"TRACE_C:", b"TRACE_PY:"), (b"TRACE_PY:", b"TRACE_C:"), (b"TRACE_C:", b"TRACE_C_TAP5:"),
                               (b"TRACE_PY:", b"TRACE:"), (b": ", b":"), (b" ", b"="), (b"TRACE_C", b"TRACE_ROTATE")])
        return b"\n".join(ln.replace(old, new, 1) if rng.random() < 0.3 else ln for ln in lines)
    if kind == 7:  # another encoding
        text = data.decode("utf-8", "replace")
        enc = rng.choice(["utf-16", "utf-16-le", "utf-32", "latin-1", "utf-8-sig", "cp1252"])
        return text.encode(enc, "replace")
    if kind == 8:  # line ends
        return rng.choice([data.replace(b"\n", b"\r\n"), data.replace(b"\n", b"\r"), data.rstrip(b"\n"),
                           data + b"\n\n\n", b"\n" * rng.randint(1, 3) + data])
    if kind == 9 and lines:  # a hostile line
        lines.insert(rng.randrange(len(lines) + 1), rng.choice([
            b"TRACE_C: F_cell " + b"1" * 100_000 + b"x", b"A" * 70_000 + b": x 1", b"TRACE_C: x " + b"1 " * 50_000,
            b"TRACE_CONFIG: tracing pixel (spixel=" + b"9" * 5000 + b", fpixel=1)", b"=== TRACE: Pixel (-1, -2) ===",
            b'{"name": "a", "values": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"TRACE:   a = [" + b"1, " * 10_000 + b"]"]))
        return b"\n".join(lines)
    if kind == 10 and lines:  # a tap's arity changed
        i = rng.randrange(len(lines))
        lines[i] = lines[i] + rng.choice([b" 1", b" 1 2", b""]) if rng.random() < 0.5 else lines[i].rsplit(b" ", 1)[0]
        return b"\n".join(lines)
    return data


def variant(seed: int, i: int, pool: list[tuple[str, bytes]]) -> tuple[str, bytes, dict]:
    rng = random.Random(f"{seed}:{i}")
    name, data = pool[rng.randrange(len(pool))]
    for _ in range(rng.choice([1, 1, 2, 3])):
        data = _mutate(rng, data)
    opts = {}
    roll = rng.random()
    if roll < 0.05:
        opts["dialect"] = rng.choice(["space", "eq", "loop", "jsonl", "auto"])
    elif roll < 0.1:
        opts["prefix"] = rng.choice(["TRACE_C", "TRACE_PY", "TRACE"])
    return name, data, opts


def run_one(seed: int, i: int, pool, path: str, spec, originals: dict) -> str | None:
    """None, or the failure (a traceback) of variant i. ``originals`` caches the readings of the
    unchanged logs (the A side of each diff)."""
    name, data, opts = variant(seed, i, pool)
    with open(path, "wb") as fh:
        fh.write(data)
    try:
        try:
            b = read_trace(path, **opts)
        except NbtraceError:
            return None
        if name not in originals:
            try:
                originals[name] = read_trace(DATA / name)
            except NbtraceError:
                originals[name] = None
        a = originals[name] if originals[name] is not None else b
        try:  # the variant against its original: odd values, missing and extra taps, other pixels
            diff_traces(a, b, spec).to_json()
        except NbtraceError:
            pass
    except Exception:  # noqa: BLE001 - the point: anything but nbtrace's own errors is a finding
        return f"variant {i} of seed {seed} (from {name}, options {opts}):\n{traceback.format_exc()}"
    return None


def fuzz(n: int, seed: int, only: int | None = None, keep: str | None = None, quiet: bool = False) -> list[str]:
    pool = sources()
    spec = default_spec()
    originals: dict = {}
    failures = []
    with tempfile.TemporaryDirectory(prefix="nbtrace-fuzz-") as tmp:
        path = os.path.join(tmp, "variant.log")
        for i in ([only] if only is not None else range(n)):
            if keep is not None:
                Path(keep).mkdir(parents=True, exist_ok=True)
                Path(keep, f"variant_{seed}_{i}.log").write_bytes(variant(seed, i, pool)[1])
            failure = run_one(seed, i, pool, path, spec, originals)
            if failure is not None:
                failures.append(failure)
                if not quiet:
                    print(failure, file=sys.stderr)
                    print(f"reproduce: python {__file__} --seed {seed} --only {i} --keep /tmp/fuzz", file=sys.stderr)
    return failures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="variants (default 100,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", type=int, help="replay this one variant")
    ap.add_argument("--keep", help="write the variants into this folder")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    failures = fuzz(args.n, args.seed, args.only, args.keep)
    took = time.perf_counter() - start
    count = 1 if args.only is not None else args.n
    print(f"{count} variant(s), seed {args.seed}: {len(failures)} failure(s) in {took:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
