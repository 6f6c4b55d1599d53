"""Where a capture's results go (checked before the run, moved in place after it) and the
provenance sidecar ``<trace>.meta.json`` written beside each trace."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from nbtrace.errors import ProducerError, TraceError, UsageError
from nbtrace.run.producer import Producer

STDERR_TAIL_LINES = 20
TEMP_PREFIX = "nbtrace-capture-"

_SETUP_LINE = re.compile(r"^(TRACE_[A-Za-z0-9]+):([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_PIXEL_HEADER = re.compile(r"^TRACE_CONFIG: tracing pixel \(spixel=(-?\d{1,9}), fpixel=(-?\d{1,9})\)")


@dataclass(frozen=True)
class CaptureResult:
    """What one producer run left behind.

    side: "c" (reference build), "user-c" (NB_C_BIN / c_bin), "py" (PyTorch simulator),
        "port-cmd" (a user's port command).
    trace_path: the producer's stdout (trace text), or None when nothing was traced.
    image_path: raw little-endian float32 image, index = slow*fpixels + fast, if requested.
    dump_path: ``.npz`` region dump, if requested.
    shape: (spixels, fpixels) from the producer's ``detector_pixels=`` setup tap, else derived
        from the nanoBragg arguments (physics.md §5.1), else None.
    meta: provenance; also written as ``<trace>.meta.json`` beside the trace.
    """

    side: str
    trace_path: Path | None
    image_path: Path | None
    dump_path: Path | None
    shape: tuple[int, int] | None
    meta: dict


def shape_from_args(nb_args: Sequence[str]) -> tuple[int, int] | None:
    """(spixels, fpixels) implied by nanoBragg detector flags (physics.md §5.1), later flags win;
    None when they do not describe a detector (the producer reports that in its own words)."""
    from nbtrace.engine.images import shape_from_nb_args

    try:
        return shape_from_nb_args([str(a) for a in nb_args])
    except UsageError:
        return None


# ----------------------------------------------------------------------------------------
# destinations


def absolute(path: Path | str | None) -> Path | None:
    return None if path is None else Path(os.path.abspath(os.fspath(path)))


def prepare_destination(path: Path | None, what: str) -> None:
    """Fail before the (possibly long) run when a result could not be written."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder for the {what}: {exc.strerror}", where=str(path.parent),
                         hint="choose a writable location") from None
    if path.is_dir():
        raise UsageError(f"the {what} destination is a directory", where=str(path), hint="give a file name")
    existed = path.exists()
    try:  # a real probe: the folder may exist yet refuse files (read-only mount, /proc)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write the {what}: {exc.strerror or exc}", where=str(path),
                         hint="choose a writable location") from None
    if not existed:
        path.unlink(missing_ok=True)


def trace_destination(out_trace, pixels) -> Path | None:
    if out_trace is not None:
        return absolute(Path(out_trace))
    if not pixels:
        return None
    # Tracing without a destination: keep the text somewhere that outlives the run.
    return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX)) / "trace.txt"


def default_dump(out_trace: Path | None) -> Path:
    """Beside the trace (c.trace -> c.npz), else in a fresh folder: never a fixed name in the
    cwd, where two concurrent captures (hunt runs both sides at once) would overwrite each other."""
    if out_trace is not None:
        return out_trace.with_suffix(".npz")
    return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX)) / "taps.npz"


def deliver(local: Path | None, dest: Path | None, what: str, producer: Producer) -> None:
    if local is None or dest is None:
        return
    if not local.exists():
        raise ProducerError(f"{producer.kind} exited 0 but wrote no {what}", where=producer.executable,
                            hint="does this build support the flag for it? (-floatfile, -trace_dump)")
    try:
        shutil.move(str(local), str(dest))
    except OSError as exc:
        raise UsageError(f"cannot write the {what}: {exc.strerror}", where=str(dest),
                         hint="choose a writable location (is the disk full?)") from None


def write_trace(out_trace: Path, text: str, meta: dict) -> None:
    meta_path = out_trace.with_name(out_trace.name + ".meta.json")
    try:
        out_trace.write_text(text)
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write the trace: {exc.strerror}", where=exc.filename or str(out_trace),
                         hint="choose a writable location (is the disk full?)") from None


def read_meta(trace_path: Path) -> dict:
    """The provenance sidecar written beside a captured trace ({} if there is none); a sidecar
    that is not a JSON object is a TraceError, never half-used."""
    meta_path = Path(trace_path).with_name(Path(trace_path).name + ".meta.json")
    if not meta_path.exists():
        return {}
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise TraceError(f"provenance sidecar is not valid JSON ({str(exc)[:120]})", str(meta_path),
                         "delete it or capture again") from None
    except OSError as exc:
        raise TraceError(f"cannot read the provenance sidecar ({exc.strerror or exc})", str(meta_path)) from None
    if not isinstance(meta, dict):
        raise TraceError(f"provenance sidecar holds a JSON {type(meta).__name__}, not an object", str(meta_path),
                         "delete it or capture again")
    return meta


# ----------------------------------------------------------------------------------------
# what the producer said


def setup_block(stdout_text: str) -> dict[str, str]:
    """The producer's ``PREFIX:key=value`` lines printed before the first pixel header.

    Only for provenance; the diff reads traces through nbtrace.engine.parse. A repeated key keeps
    its first value (the BEAM pivot prints some twice, before and after two-theta).
    """
    setup: dict[str, str] = {}
    for line in stdout_text.splitlines():
        if line.startswith("TRACE_CONFIG:"):
            break
        m = _SETUP_LINE.match(line.strip())
        if m:
            setup.setdefault(m.group(2), m.group(3).strip())
    return setup


def traced_pixels(stdout_text: str) -> list[tuple[int, int]]:
    found = []
    for line in stdout_text.splitlines():
        m = _PIXEL_HEADER.match(line.strip())
        if m:
            found.append((int(m.group(1)), int(m.group(2))))
    return found


def shape_from_setup(setup: dict[str, str]) -> tuple[int, int] | None:
    words = setup.get("detector_pixels", "").split()
    if len(words) != 2 or not all(re.fullmatch(r"[0-9]{1,9}", w) for w in words):
        return None
    fpix, spix = int(words[0]), int(words[1])
    return (spix, fpix) if fpix > 0 and spix > 0 else None


def _sha256(path: str) -> str | None:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def _simulator_source_sha256() -> str | None:
    """For the PyTorch side the interpreter's checksum says nothing: hash the simulator's
    own sources instead (found without importing it, so torch is not loaded here)."""
    import importlib.util

    spec = importlib.util.find_spec("nbtrace.sim")
    if spec is None or not spec.submodule_search_locations:
        return None
    digest = hashlib.sha256()
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def provenance(producer, argv, nb_args, run, setup, pixels, seen_pixels, roi, image, dump, shape) -> dict:
    return {
        "side": producer.side,
        "producer_kind": producer.kind,
        "argv": argv,
        "nb_args": nb_args,
        "executable": producer.executable,
        "sha256": _sha256(producer.executable),
        "source_sha256": _simulator_source_sha256() if producer.side == "py" else None,
        "producer": setup.get("producer"),
        "dtype": setup.get("dtype"),
        "structure_factors": setup.get("structure_factors"),
        "setup": setup,
        "returncode": run.returncode,
        "wall_s": round(run.wall_s, 6),
        "stderr_tail": run.stderr_text.splitlines()[-STDERR_TAIL_LINES:],
        "env": run.env_note,
        "pixels_requested": [list(p) for p in pixels],
        "pixels_traced": [list(p) for p in seen_pixels],
        "roi": list(roi) if roi is not None else None,
        "image": str(image) if image else None,
        "dump": str(dump) if dump else None,
        "shape": list(shape) if shape else None,
        "captured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "nbtrace_version": _nbtrace_version(),
    }


def _nbtrace_version() -> str | None:
    # the installed distribution's version: `from nbtrace import __version__` breaks when a
    # test run puts tests/ (which holds a tests/nbtrace/ folder) ahead of the package
    from importlib import metadata

    try:
        return metadata.version("nbtrace")
    except metadata.PackageNotFoundError:
        return None
