"""Capture plumbing, driven by fake producers (tiny scripts printing contract-conformant
trace text). The real producers are exercised by tests/test_parity.py."""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from nbtrace.run.capture import capture, read_meta, shape_from_args
from nbtrace.errors import ProducerError, UsageError

FAKE = r'''#!{python}
"""Fake producer: prints a setup block and one tap per traced pixel; obeys -floatfile and
-trace_roi/-trace_dump; FAKE_MODE in the environment selects a failure."""
import os, sys, time
import numpy as np
prefix = os.environ.get("FAKE_PREFIX", "TRACE_C")
mode = os.environ.get("FAKE_MODE", "ok")
args = sys.argv[1:]
pixels, image, roi, dump, i = [], None, None, None, 0
while i < len(args):
    a = args[i]
    if a == "-trace_pixel":
        pixels.append((int(args[i + 1]), int(args[i + 2]))); i += 3
    elif a == "-floatfile":
        image = args[i + 1]; i += 2
    elif a == "-trace_roi":
        roi = [int(x) for x in args[i + 1:i + 5]]; i += 5
    elif a == "-trace_dump":
        dump = args[i + 1]; i += 2
    elif a == "--prefix":  # lets one fake play both sides of `capture both`
        prefix = args[i + 1]; i += 2
    elif a == "--scale":
        os.environ["FAKE_SCALE"] = args[i + 1]; i += 2
    elif a == "-hkl":
        if not os.path.exists(args[i + 1]):
            print("fake: error: -hkl file not found: " + args[i + 1], file=sys.stderr); sys.exit(2)
        i += 2
    else:
        i += 1
if mode == "fail":
    print("fake: computing", file=sys.stderr)
    print("fake: error: -cell needs 6 numbers", file=sys.stderr)
    sys.exit(2)
if mode == "hang":
    time.sleep(60)
print(prefix + ":producer=fake-producer 9.9")
print(prefix + ":dtype=" + ("float32" if "float32" in args else "float64"))
print(prefix + ":structure_factors=default_F:100")
print(prefix + ":detector_pixels=6 4")
print("fake: cwd=" + os.getcwd(), file=sys.stderr)
print("fake: fdump_seen=" + str(os.path.exists("Fdump.bin")), file=sys.stderr)
print(prefix + ":argv=" + " ".join(args))
for s, f in pixels:
    print("TRACE_CONFIG: tracing pixel (spixel=%d, fpixel=%d)" % (s, f))
    print(prefix + ": R_distance_meters %r" % (0.1 + 1e-3 * s + 1e-4 * f))
    print(prefix + ": I_pixel_final %r" % (float(os.environ.get("FAKE_SCALE", "1")) * (s * 6 + f + 0.5)))
if image and mode != "noimage":
    np.arange(24, dtype="<f4").tofile(image)
if dump:
    x0, x1, y0, y1 = roi
    np.savez(dump, R_distance_meters=np.full((y1 - y0 + 1, x1 - x0 + 1), 0.1 * float(os.environ.get("FAKE_SCALE", "1"))),
             roi=np.array(roi))
print("fake: done", file=sys.stderr)
'''


@pytest.fixture
def fake(tmp_path) -> Path:
    path = tmp_path / "bin" / "fake_producer"
    path.parent.mkdir()
    path.write_text(FAKE.replace("{python}", sys.executable))
    path.chmod(0o755)
    return path


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # default outputs stay in the test's dir
    monkeypatch.delenv("NB_C_BIN", raising=False)
    return work


def setup_of(trace: Path) -> dict[str, str]:
    out = {}
    for line in trace.read_text().splitlines():
        if line.startswith("TRACE_C:") and "=" in line:
            key, _, value = line[len("TRACE_C:"):].partition("=")
            out[key] = value
    return out


def test_capture_writes_trace_image_and_provenance(fake, in_tmp):
    (in_tmp / "Fdump.bin").write_bytes(b"stale")  # must not be visible to the producer
    res = capture("c", ["-cell", "100", "100", "100", "90", "90", "90"], pixels=[(1, 2), (3, 0)],
                  image=Path("img.bin"), out_trace=Path("out/c.trace"), c_bin=str(fake))
    assert res.side == "user-c"
    assert res.trace_path == in_tmp / "out" / "c.trace"
    assert res.image_path == in_tmp / "img.bin"
    assert np.fromfile(res.image_path, dtype="<f4").tolist() == list(range(24))
    assert res.shape == (4, 6)

    setup = setup_of(res.trace_path)
    said = dict(line.removeprefix("fake: ").split("=", 1) for line in res.meta["stderr_tail"] if "=" in line)
    assert Path(said["cwd"]) != in_tmp and not Path(said["cwd"]).exists()  # fresh dir, removed afterwards
    assert said["fdump_seen"] == "False"
    words = setup["argv"].split()
    start = words.index("-trace_pixel")
    assert words[start:start + 6] == ["-trace_pixel", "1", "2", "-trace_pixel", "3", "0"]
    assert words[start + 6] == "-floatfile"  # the image comes from the same process
    text = res.trace_path.read_text()
    assert "TRACE_CONFIG: tracing pixel (spixel=3, fpixel=0)" in text

    meta = read_meta(res.trace_path)
    assert meta == res.meta
    assert meta["executable"] == str(fake.resolve())
    import hashlib

    assert meta["sha256"] == hashlib.sha256(fake.read_bytes()).hexdigest()
    assert meta["producer"] == "fake-producer 9.9"
    assert meta["dtype"] == "float64"
    assert meta["structure_factors"] == "default_F:100"
    assert meta["returncode"] == 0
    assert meta["wall_s"] > 0
    assert meta["stderr_tail"][-1] == "fake: done" and len(meta["stderr_tail"]) == 3
    assert meta["argv"][0] == str(fake.resolve())
    assert meta["nb_args"] == ["-cell", "100", "100", "100", "90", "90", "90"]
    assert meta["pixels_traced"] == [[1, 2], [3, 0]]


def test_nb_c_bin_environment_selects_user_build(fake, in_tmp, monkeypatch):
    monkeypatch.setenv("NB_C_BIN", str(fake))
    res = capture("c", ["-x"], pixels=[(0, 0)], out_trace=Path("t.trace"))
    assert res.side == "user-c"
    assert res.meta["executable"] == str(fake.resolve())


def test_port_cmd_gets_dtype_and_injections(fake, in_tmp, monkeypatch):
    monkeypatch.setenv("FAKE_PREFIX", "TRACE_PY")
    cmd = f"{shlex.quote(sys.executable)} {shlex.quote(str(fake))}"
    res = capture("py", ["-N", "5"], pixels=[(0, 1)], out_trace=Path("p.trace"), port_cmd=cmd,
                  inject=["svec-two-pi"], dtype="float32")
    assert res.side == "port-cmd"
    argv = res.meta["argv"]
    # absolute but not symlink-resolved: a venv python finds its environment through its own path
    assert argv[:2] == [os.path.abspath(sys.executable), str(fake)]
    assert res.meta["executable"] == str(Path(sys.executable).resolve())
    assert argv[2:] == ["-N", "5", "-trace_pixel", "0", "1", "-dtype", "float32", "--inject", "svec-two-pi"]
    assert res.meta["dtype"] == "float32"


def test_relative_input_files_are_resolved_against_callers_cwd(fake, in_tmp):
    (in_tmp / "data").mkdir()
    (in_tmp / "data" / "p1.hkl").write_text("0 0 1 10\n")
    res = capture("c", ["-hkl", "data/p1.hkl"], pixels=[(0, 0)], out_trace=Path("t"), c_bin=str(fake))
    assert res.meta["nb_args"] == ["-hkl", "data/p1.hkl"]
    assert str(in_tmp / "data" / "p1.hkl") in res.meta["argv"]


def test_region_dump_is_delivered(fake, in_tmp):
    res = capture("c", ["-x"], roi=(1, 3, 0, 1), dump=Path("d.npz"), c_bin=str(fake))
    assert res.trace_path is None
    with np.load(res.dump_path) as z:
        assert z["R_distance_meters"].shape == (2, 3)
        assert z["R_distance_meters"][0, 0] == 0.1
        assert z["roi"].tolist() == [1, 3, 0, 1]


def test_producer_failure_names_last_stderr_line(fake, in_tmp, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(ProducerError) as err:
        capture("c", ["-cell", "1"], pixels=[(0, 0)], out_trace=Path("t"), c_bin=str(fake))
    msg = str(err.value)
    assert "exited with code 2" in msg and "-cell needs 6 numbers" in msg
    assert "\n" not in msg
    assert not Path("t").exists()


def test_timeout_kills_producer(fake, in_tmp, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "hang")
    with pytest.raises(ProducerError, match="did not finish within"):
        capture("c", ["-x"], pixels=[(0, 0)], c_bin=str(fake), timeout=1.0)


def test_missing_image_is_an_error(fake, in_tmp, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "noimage")
    with pytest.raises(ProducerError, match="wrote no image"):
        capture("c", ["-x"], image=Path("i.bin"), c_bin=str(fake))


def test_missing_binary(in_tmp):
    with pytest.raises(ProducerError, match="does not exist"):
        capture("c", ["-x"], pixels=[(0, 0)], c_bin=str(in_tmp / "no_such_build"))
    with pytest.raises(ProducerError, match="not an executable"):
        capture("py", ["-x"], pixels=[(0, 0)], port_cmd="no-such-port-command-xyz --flag")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(nb_args=["-trace_pixel", "1", "1"], pixels=[(0, 0)]), "--pixel S F"),
        (dict(nb_args=["-floatfile", "x.bin"], pixels=[(0, 0)]), "--image"),
        (dict(nb_args=["-x"]), "nothing to capture"),
        (dict(nb_args=["-x"], dump=Path("d.npz"), pixels=[(0, 0)]), "needs a region"),
        (dict(nb_args=["-x"], roi=(3, 1, 0, 0)), "empty or negative roi"),
        (dict(nb_args=["-x"], pixels=[(-1, 0)]), "negative index"),
        (dict(nb_args=["-x"], pixels=[(0, 0)], inject=["float32"]), "only in the PyTorch"),
        (dict(nb_args=["-x"], pixels=[(0, 0)], dtype="float32"), "always computes in float64"),
    ],
)
def test_bad_requests_are_usage_errors(fake, in_tmp, kwargs, message):
    nb_args = kwargs.pop("nb_args")
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        capture("c", nb_args, c_bin=str(fake), **kwargs)


@pytest.mark.parametrize(
    "args, shape",
    [
        ([], (1024, 1024)),
        (["-detpixels", "64"], (64, 64)),
        (["-detpixels_f", "30", "-detpixels_s", "20"], (20, 30)),
        (["-detsize", "10", "-pixel", "0.1"], (100, 100)),
        (["-detpixels", "64", "-pixel", "0.05"], (64, 64)),
        (["-detpixels", "abc"], None),
    ],
)
def test_shape_from_args(args, shape):
    assert shape_from_args(args) == shape


# ---------------------------------------------------------------------------- CLI


def run_cli(argv, capsys):
    from nbtrace.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_cli_capture_c_writes_trace(fake, in_tmp, capsys):
    code, out, err = run_cli(["capture", "c", "--c-bin", str(fake), "--pixel", "2", "1", "-o", "c.trace",
                              "--image", "c.bin", "--", "-cell", "100"], capsys)
    assert code == 0, err
    assert "TRACE_CONFIG: tracing pixel (spixel=2, fpixel=1)" in Path("c.trace").read_text()
    assert Path("c.trace.meta.json").exists() and Path("c.bin").stat().st_size == 24 * 4
    assert "capture user-c: done" in err  # progress goes to stderr, nothing to stdout
    assert out == ""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["capture", "c", "--pixel", "1", "2", "-cell", "100"], "must follow '--'"),
        (["capture", "c", "--pixel", "1", "2", "--"], "no nanoBragg arguments"),
        (["capture", "c", "--", "-cell", "100"], "nothing to capture"),
        (["capture", "py", "--pixel", "1", "--", "-cell", "100"], "--pixel"),
        (["capture", "c", "--out", "d", "--pixel", "1", "2", "--", "-cell", "1"], "--out is for 'both'"),
    ],
)
def test_cli_usage_errors_are_one_line_exit_2(argv, message, in_tmp, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_producer_failure_is_one_line_exit_2(fake, in_tmp, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "fail")
    code, out, err = run_cli(["capture", "c", "--c-bin", str(fake), "--pixel", "0", "0", "--", "-cell", "1"],
                             capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("nbtrace: error:")]
    assert len(lines) == 1 and "-cell needs 6 numbers" in lines[0]
    assert "Traceback" not in err


def test_cli_both_agree_and_diverge_with_fake_producers(fake, in_tmp, capsys):
    base = ["capture", "both", "--c-bin", str(fake), "--pixel", "1", "2", "--pixel", "3", "4"]
    port = f"{shlex.quote(str(fake))} --prefix TRACE_PY"
    code, out, err = run_cli(base + ["--port-cmd", port, "--out", "agree", "--format", "json", "--", "-x"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["verdict"] == "agree" and report["counts"]["matched"] >= 4
    assert Path("agree/c.trace").exists() and Path("agree/py.trace.meta.json").exists()
    assert json.loads(Path("agree/trace_diff.json").read_text()) == report
    assert read_meta(Path("agree/py.trace"))["side"] == "port-cmd"

    code, out, err = run_cli(base + ["--port-cmd", port + " --scale 2", "--out", "diverge", "--format", "json",
                                     "--", "-x"], capsys)
    assert code == 1, err
    assert json.loads(out)["root_cause"]["tap"] == "I_pixel_final"


def test_cli_both_images_go_into_out_dir(fake, in_tmp, capsys):
    port = f"{shlex.quote(str(fake))} --prefix TRACE_PY"
    code, out, err = run_cli(["capture", "both", "--c-bin", str(fake), "--port-cmd", port, "--pixel", "0", "0",
                              "--image", "img.float", "--out", "d", "--", "-x"], capsys)
    assert code == 0, err
    assert Path("d/c_img.float").stat().st_size == Path("d/py_img.float").stat().st_size == 24 * 4


def test_run_context_for_the_diff_follows_argv_order():
    from nbtrace.cli.capture import run_context

    meta = {"setup": {"oversample": "2", "steps": "16", "sources": "x"},
            "nb_args": ["-Na", "3", "-N", "5", "-Nc", "2", "-lambda", "1"]}
    assert run_context(meta) == {"oversample": 2, "steps": 16, "N": (5, 5, 2)}
    assert run_context({"setup": {}, "nb_args": ["-Na", "3"]}) == {}  # N only when all three axes are known


def test_cli_both_region_dumps_are_compared(fake, in_tmp, capsys):
    base = ["capture", "both", "--c-bin", str(fake), "--roi", "0", "2", "1", "3"]
    port = f"{shlex.quote(str(fake))} --prefix TRACE_PY"
    code, out, err = run_cli(base + ["--port-cmd", port, "--out", "same", "--", "-x"], capsys)
    assert code == 0, err
    assert out.startswith("AGREE: the region agrees")
    assert Path("same/c_taps.npz").exists() and Path("same/py_taps.npz").exists()
    assert not Path("taps.npz").exists()  # nothing shared in the cwd

    code, out, err = run_cli(base + ["--port-cmd", port + " --scale 3", "--out", "differ", "--pixel", "1", "1",
                                     "--format", "json", "--", "-x"], capsys)
    assert code == 1, err
    doc = json.loads(out)
    assert set(doc) == {"trace", "region"}
    assert doc["trace"]["root_cause"]["tap"] == "I_pixel_final"
    assert doc["region"]["verdict"] == "diverge"


def test_unwritable_destinations_fail_before_the_run(fake, in_tmp):
    Path("blocker").write_text("a file where a folder is needed")
    with pytest.raises(UsageError, match="cannot create the folder for the trace"):
        capture("c", ["-x"], pixels=[(0, 0)], out_trace=Path("blocker/t.trace"), c_bin=str(fake))
    Path("adir").mkdir()
    with pytest.raises(UsageError, match="image destination is a directory"):
        capture("c", ["-x"], image=Path("adir"), c_bin=str(fake))


def test_region_dump_default_goes_beside_the_trace(fake, in_tmp):
    res = capture("c", ["-x"], roi=(0, 1, 0, 1), out_trace=Path("run/c.trace"), c_bin=str(fake))
    assert res.dump_path == in_tmp / "run" / "c.npz" and res.dump_path.exists()
    res = capture("c", ["-x"], roi=(0, 1, 0, 1), c_bin=str(fake))
    assert res.dump_path.exists() and res.dump_path.parent != in_tmp
    assert not (in_tmp / "taps.npz").exists()


def test_refusing_destination_is_found_by_a_probe_before_the_run(fake, in_tmp):
    # the folder exists, yet the file cannot be created (root ignores permission bits, so a
    # dangling symlink stands in for a read-only mount): the producer must not run first
    Path("link.trace").symlink_to(in_tmp / "missing-dir" / "t.trace")
    said = []
    with pytest.raises(UsageError, match="cannot write the trace"):
        capture("c", ["-x"], pixels=[(0, 0)], out_trace=Path("link.trace"), c_bin=str(fake), progress=said.append)
    assert said == []
    capture("c", ["-x"], image=Path("new.bin"), c_bin=str(fake))  # the probe leaves no stray file behind
    assert Path("new.bin").stat().st_size > 0


def test_cli_both_unwritable_out_and_bad_timeout_are_one_line_exit_2(fake, in_tmp, capsys):
    Path("blocker").write_text("a file where a folder is needed")
    base = ["capture", "both", "--c-bin", str(fake), "--port-cmd", str(fake), "--pixel", "1", "2"]
    code, out, err = run_cli(base + ["--out", "blocker/d", "--", "-x"], capsys)
    assert code == 2 and "--out blocker/d" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(base + ["--timeout", "-1", "--", "-x"], capsys)
    assert code == 2 and "--timeout" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("kwargs,message", [
    ({"port_cmd": ""}, "--port-cmd is empty"),
    ({"port_cmd": "'unbalanced"}, "cannot be split into words"),
    ({"c_bin": ""}, "--c-bin is empty"),
])
def test_empty_or_unsplittable_producer_commands_are_usage_errors(in_tmp, kwargs, message):
    # "" used to mean "the default producer": the user asked for their own and got ours silently
    side = "c" if "c_bin" in kwargs else "py"
    with pytest.raises(UsageError, match=message):
        capture(side, ["-x"], pixels=[(0, 0)], **kwargs)


# ---------------------------------------------------------------------------- what a producer leaves behind

DAEMONIZING = """#!/bin/sh
# a user's build that starts a helper in the background and exits, leaving the helper running
sleep 300 &
echo $! >> "{pids}"
echo "TRACE_C:producer=daemonizing"
echo "TRACE_CONFIG: tracing pixel (spixel=0, fpixel=0)"
echo "TRACE_C: I_pixel_final 1.5"
"""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper has stopped running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_dead(pids, seconds: float = 10.0) -> list[int]:
    """The pids still running after ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [p for p in pids if _alive(p)]


DETACHING = """#!/bin/sh
# a user's build whose helper leaves the process group and is orphaned (setsid in a subshell
# that exits at once: a double fork), the way a daemon detaches
( setsid sleep 300 & echo $! >> "{pids}" )
echo "TRACE_C:producer=detaching"
echo "TRACE_CONFIG: tracing pixel (spixel=0, fpixel=0)"
echo "TRACE_C: I_pixel_final 1.5"
"""


@pytest.mark.parametrize("script", [DAEMONIZING, DETACHING], ids=["background-child", "detached-daemon"])
def test_what_a_producer_started_does_not_outlive_the_capture(in_tmp, script):
    pids = in_tmp / "pids"
    build = in_tmp / "producer"
    build.write_text(script.replace("{pids}", str(pids)))
    build.chmod(0o755)
    capture("c", ["-x"], pixels=[(0, 0)], out_trace=Path("t.trace"), c_bin=str(build))
    started = [int(x) for x in pids.read_text().split()]
    assert len(started) == 1
    assert wait_dead(started) == []


def test_temporary_trace_folders_live_in_the_temp_dir_the_caller_chose(fake, in_tmp, tmp_path):
    res = capture("c", ["-x"], pixels=[(0, 0)], c_bin=str(fake))  # no -o: a fresh temp folder
    assert res.trace_path.parent.parent == tmp_path / "tmp"
    assert res.trace_path.parent.name.startswith("nbtrace-capture-")


def test_a_sidecar_that_is_not_a_json_object_is_a_trace_error(in_tmp):
    from nbtrace.errors import TraceError

    for text, what in (("[1, 2]", "JSON list"), ("{nope", "not valid JSON"), ('"x"', "JSON str")):
        Path("t.trace.meta.json").write_text(text)
        with pytest.raises(TraceError, match=what):
            read_meta(Path("t.trace"))


def test_run_size_caps_and_flags(fake, in_tmp):
    with pytest.raises(UsageError, match="--max-pixels"):
        capture("c", ["-detpixels", "9000"], pixels=[(0, 0)], c_bin=str(fake))
    res = capture("c", ["-detpixels", "9000"], pixels=[(0, 0)], c_bin=str(fake), max_pixels=9000 * 9000,
                  out_trace=Path("big.trace"))
    assert res.meta["pixels_traced"] == [[0, 0]]
    with pytest.raises(UsageError, match="--max-steps"):
        capture("c", ["-oversample", "20", "-phisteps", "100000"], pixels=[(0, 0)], c_bin=str(fake))
    with pytest.raises(UsageError, match="timeout"):
        capture("c", ["-x"], pixels=[(0, 0)], c_bin=str(fake), timeout=float("nan"))


def test_a_failed_capture_leaves_no_temporary_folder(fake, in_tmp, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(ProducerError):
        capture("c", ["-x"], pixels=[(0, 0)], roi=(0, 1, 0, 1), c_bin=str(fake))  # no -o, no --dump
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_failed_capture_keeps_the_folder_the_caller_named(fake, in_tmp, monkeypatch):
    Path("mine").mkdir()
    Path("mine/keep.txt").write_text("the user's")
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(ProducerError):  # the default dump would go beside the named trace
        capture("c", ["-x"], pixels=[(0, 0)], roi=(0, 1, 0, 1), out_trace=Path("mine/t.trace"), c_bin=str(fake))
    assert Path("mine/keep.txt").read_text() == "the user's"


def test_run_context_skips_counts_that_are_not_counts():
    from nbtrace.cli.capture import run_context
    from nbtrace.run.hunt import _run_context

    meta = {"setup": {"oversample": "inf", "steps": "nan", "phisteps": "1e999"},
            "nb_args": ["-N", "inf", "-Na", "nan", "-Nb", "2", "-Nc", "2"]}
    assert run_context(meta) == {}
    assert _run_context(["-N", "inf", "-Na", "nan"], meta) == {}
