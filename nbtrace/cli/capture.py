"""`nbtrace capture c|py|both`: run producers, keep their traces, and (both) diff them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from nbtrace.cli.options import all_option
from nbtrace.errors import UsageError
from nbtrace.run.limits import MAX_PIXELS, MAX_STEPS

USAGE_EXAMPLE = "nbtrace capture both --pixel 200 300 -- -lambda 0.5 -cell 100 100 100 90 90 90 -N 5 -default_F 100"


class _NeedsDoubleDash(click.Command):
    """nanoBragg flags look like click options (``-osc`` would parse as ``-o sc``), so they
    must come after ``--``; say so instead of letting click misparse them."""

    def parse_args(self, ctx, args):
        before = args[: args.index("--")] if "--" in args else args
        wants_help = any(a in ("-h", "--help") for a in before)
        if "--" not in args and args and not wants_help:
            raise click.UsageError(
                "the nanoBragg arguments must follow '--', e.g. " + USAGE_EXAMPLE, ctx=ctx
            )
        _check_counted_options(before, ctx)
        return super().parse_args(ctx, args)


# options taking several numbers: click would swallow a '--' as one of them and then
# misread the nanoBragg flags, so check their arity before click sees them
_COUNTED = {"--pixel": ("S F", 2), "--roi": ("XMIN XMAX YMIN YMAX", 4)}


def _check_counted_options(before: list[str], ctx) -> None:
    for i, token in enumerate(before):
        if token not in _COUNTED:
            continue
        metavar, n = _COUNTED[token]
        values = before[i + 1 : i + 1 + n]
        if len(values) < n or not all(_is_int(v) for v in values):
            got = " ".join(values) or "nothing"
            raise click.UsageError(f"{token} needs {n} integers {metavar}, got {got}", ctx=ctx)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _progress(msg: str) -> None:
    click.echo(msg, err=True)


@click.command(cls=_NeedsDoubleDash)
@click.argument("side", type=click.Choice(["c", "py", "both"]))
@click.argument("nb_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--pixel", "pixels", type=(int, int), multiple=True, metavar="S F",
              help="Pixel to trace, slow then fast (repeatable).")
@click.option("--roi", type=(int, int, int, int), default=None, metavar="XMIN XMAX YMIN YMAX",
              help="Region for a tap dump, inclusive, fast = x, slow = y.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="Trace file (c/py). Default: a new temporary file.")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path),
              help="Raw float32 image. With 'both': one per side, prefixed c_/py_ (a relative path is inside --out).")
@click.option("--dump", type=click.Path(dir_okay=False, path_type=Path),
              help="Region dump .npz (needs --roi). With 'both': one per side, prefixed c_/py_ (relative: inside --out).")
@click.option("--c-bin", envvar="NB_C_BIN", default=None, metavar="PATH",
              help="Your own instrumented C build instead of the reference (env NB_C_BIN).")
@click.option("--port-cmd", default=None, metavar="CMD", help="Your own port's command; nanoBragg args are appended.")
@click.option("--inject", multiple=True, metavar="NAME", help="PyTorch fault injection (repeatable).")
@click.option("--replay", multiple=True, metavar="TAP",
              help="py: replace this tap by the --replay-ref trace's values at the traced pixels (repeatable).")
@click.option("--replay-ref", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="REF",
              help="The reference trace whose values --replay feeds into the port.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default=None,
              help="PyTorch dtype (the C side is always float64).")
@click.option("--timeout", type=float, default=900.0, show_default=True, metavar="SEC",
              help="Seconds per producer run (finite, > 0).")
@click.option("--max-pixels", type=int, default=MAX_PIXELS, show_default=True, metavar="N",
              help="Refuse a detector of more pixels than this (a typo in -detpixels); raise it for a bigger run.")
@click.option("--max-steps", type=int, default=MAX_STEPS, show_default=True, metavar="N",
              help="Refuse more sub-steps per pixel than this (oversample² x phisteps x mosaic domains x sources x "
                   "thickness steps); raise it for a bigger run.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="'both': directory for c.trace, py.trace (+ .meta.json). Default: a new temporary directory.")
@click.option("--format", "fmt", type=click.Choice(["console", "md", "json"]), default="console",
              show_default=True, help="'both': diff report format.")
@all_option
def command(side, nb_args, pixels, roi, output, image, dump, c_bin, port_cmd, inject, replay, replay_ref, dtype,
            timeout, max_pixels, max_steps, out_dir, fmt, all_rows):
    """Run the C and/or PyTorch producer once (fresh temp dir, timeout) and keep the trace.

    \b
    nbtrace capture c  --pixel 200 300 -o c.trace -- <nanoBragg args>
    nbtrace capture py --pixel 200 300 -o py.trace --image py.bin -- <nanoBragg args>
    nbtrace capture both --pixel 200 300 --out run1 -- <nanoBragg args>

    'both' runs the two producers side by side, writes DIR/c.trace and DIR/py.trace (each with
    a .meta.json provenance sidecar), prints the diff of the traced pixels as `nbtrace diff` does
    (verdict word first; only the taps that need attention unless --all) and, with --roi, the
    diff of the region dumps; it exits 0 (agree) or 1 (diverge); 2 on bad input or a failing producer.
    NB_C_BIN or --c-bin replaces the C reference by your own instrumented build.
    """
    from nbtrace.cli import require_sim
    from nbtrace.run.capture import capture
    from nbtrace.run.limits import check_run_size
    from nbtrace.run.request import check_timeout

    if not nb_args:
        raise UsageError("no nanoBragg arguments after '--'", hint="e.g. " + USAGE_EXAMPLE)
    if not pixels and roi is None and image is None:
        raise UsageError("nothing to capture", hint="give at least one --pixel S F (slow fast), a --roi or --image")
    check_timeout(timeout)  # before 'both' starts either side
    check_run_size(nb_args, max_pixels=max_pixels, max_steps=max_steps)
    if side in ("py", "both") and port_cmd is None:
        require_sim(f"capture {side}")
    common = dict(pixels=pixels, roi=roi, c_bin=c_bin, port_cmd=port_cmd, timeout=timeout, progress=_progress,
                  max_pixels=max_pixels, max_steps=max_steps)
    if side != "both":
        if all_rows:
            raise UsageError("--all is for 'both'", hint=f"'capture {side}' writes a trace and prints no diff")
        if out_dir is not None:
            raise UsageError("--out is for 'both'", hint=f"use -o FILE with '{side}'")
        capture(side, list(nb_args), dump=dump, image=image, out_trace=output, inject=inject, dtype=dtype,
                replay=replay, replay_ref=replay_ref, **common)
        return 0
    if output is not None:
        raise UsageError("-o is for 'c' or 'py'", hint="with 'both' use --out DIR")
    if replay or replay_ref is not None:
        raise UsageError("--replay is for 'capture py'", hint="capture the reference first, then 'capture py --replay'")
    return _both(list(nb_args), out_dir, image, dump, inject, dtype, fmt, all_rows, common)


def _both(nb_args, out_dir, image, dump, inject, dtype, fmt, all_rows, common) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from nbtrace.run.capture import capture

    from nbtrace.cli import ensure_output_dir, record_verdict

    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="nbtrace-both-"))
    out_dir = ensure_output_dir(str(out_dir), "--out")
    _progress(f"capture both: writing into {out_dir}")
    if common["roi"] is not None and dump is None:
        dump = Path("taps.npz")  # one per side inside DIR, never a shared file in the cwd

    def one(side):
        return capture(
            side, nb_args,
            out_trace=out_dir / f"{side}.trace",
            image=_per_side(out_dir, image, side),
            dump=_per_side(out_dir, dump, side),
            inject=inject if side == "py" else (),
            dtype=dtype if side == "py" else None,
            **common,
        )

    # the two producers are independent processes: run them side by side (2 cores); the
    # C side's error wins when both fail, since the reference is what users check first
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {side: pool.submit(one, side) for side in ("c", "py")}
        results = {side: fut.result() for side, fut in futures.items()}
    parts: dict[str, tuple[bool, object]] = {}
    if common["pixels"]:
        context = run_context(results["c"].meta)
        if dtype:
            context["dtype"] = dtype  # the port's compute dtype: float32 noise is then a precision class
        parts["trace"] = trace_diff(out_dir / "c.trace", out_dir / "py.trace", context)
    if common["roi"] is not None:
        parts["region"] = region_diff(results["c"].dump_path, results["py"].dump_path)
    if not parts:
        _progress(f"capture both: no --pixel or --roi, nothing to diff; compare the images with "
                  f"nbtrace compare {results['c'].image_path} {results['py'].image_path}")
        return 0
    code = record_verdict(0 if all(ok for ok, _ in parts.values()) else 1)
    _save_reports(parts, out_dir)  # before printing: a reader closing the pipe early must not cost the files
    print_reports(parts, fmt, all_rows=all_rows)
    return code


def _per_side(out_dir: Path, name: Path | None, side: str) -> Path | None:
    """'both' writes one file per side, the name prefixed c_/py_: a relative name lands inside
    --out with its folders kept (sub/x.bin -> DIR/sub/c_x.bin), an absolute one in its own folder."""
    if name is None:
        return None
    return (name.parent if name.is_absolute() else out_dir / name.parent) / f"{side}_{name.name}"


def _save_reports(parts: dict, out_dir: Path) -> None:
    """Keep the verdicts beside the traces (DIR/trace_diff.json, DIR/region_diff.json)."""
    import json

    for name, (_, res) in parts.items():
        doc = render_json(res) if name == "trace" else res.to_json()
        path = out_dir / f"{name}_diff.json"
        try:
            path.write_text(json.dumps(doc, indent=2) + "\n")
        except OSError as exc:
            raise UsageError(f"cannot write the diff report: {exc.strerror}", where=str(path),
                             hint="give --out a writable directory") from None


def trace_diff(c_trace: Path, py_trace: Path, context: dict):
    from nbtrace.engine.diff import diff_traces
    from nbtrace.engine.parse import read_trace
    from nbtrace.engine.spec import spec_for

    a, b = read_trace(c_trace), read_trace(py_trace)
    # the same spec choice as `nbtrace diff A B`, so both commands say the same thing
    result = diff_traces(a, b, spec_for(a, b), context=context)
    return bool(result), result


def region_diff(c_dump: Path, py_dump: Path):
    from nbtrace.engine.maps import compare_dumps, load_dump
    from nbtrace.engine.spec import default_spec

    result = compare_dumps(load_dump(c_dump), load_dump(py_dump), default_spec())
    return bool(result), result


def print_reports(parts: dict, fmt: str, *, all_rows: bool = False) -> None:
    """The trace diff exactly as `nbtrace diff` prints it (same renderer), then the region's."""
    import json

    from nbtrace.cli.maps import render_text
    from nbtrace.report import render

    if fmt == "json":
        docs = {name: (render_json(res) if name == "trace" else res.to_json()) for name, (_, res) in parts.items()}
        click.echo(json.dumps(docs[next(iter(docs))] if len(docs) == 1 else docs, indent=2))
        return
    for name, (_, res) in parts.items():
        if name == "trace" and fmt == "console":
            from nbtrace.report.console import emit

            emit(res, all_rows=all_rows)
            continue
        text = render(res, fmt=fmt) if name == "trace" else "\n".join(render_text(res))
        click.echo(text.rstrip("\n"))


def render_json(result) -> dict:
    import json

    from nbtrace.report import render

    return json.loads(render(result, fmt="json"))


def run_context(meta: dict) -> dict:
    """Run-derived counts the diff uses to explain factors (oversample², steps, N per axis)."""
    setup = meta.get("setup") or {}
    ctx: dict = {}
    for key in ("oversample", "steps", "phisteps", "mosaic_domains", "sources"):
        try:
            ctx[key] = int(float(setup[key]))
        except (KeyError, ValueError, OverflowError):  # "inf" is a float, not a count
            pass
    args = list(meta.get("nb_args") or ())
    axes_of = {"-N": "abc", "-Na": "a", "-Nb": "b", "-Nc": "c"}
    n = {}
    for flag, value in zip(args, args[1:]):  # argv order: later flags win, as in the producers
        if flag in axes_of:
            try:
                n.update({axis: int(float(value)) for axis in axes_of[flag]})
            except (ValueError, OverflowError):
                pass
    if len(n) == 3:
        ctx["N"] = (n["a"], n["b"], n["c"])
    return ctx
