"""nbtrace.tap: selection, exact values, region dumps, replay, autograd, torch.compile, environment."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import nbtrace.tap as T
from nbtrace.engine.maps import load_dump
from nbtrace.errors import UsageError
from nbtrace.tap import tap
from nbtrace.tap.replay import Reference

S, F = 7, 5


def _img(ncomp=3):
    rng = np.random.default_rng(3)
    return rng.standard_normal((S, F, ncomp)) * 1e-7


def _records(s):
    return {(r.name, r.index.pixel, r.index.loop, r.index.occurrence): r.values for r in s.trace().records}


def test_no_session_returns_the_same_object():
    x = np.ones(3)
    t = torch.ones(2, requires_grad=True)
    assert T.current() is None
    assert tap("a", x) is x and tap("b", t) is t and tap("c", 2.5, pixel_axes=None) == 2.5
    T.setup("dtype", "float64")  # no session: nothing to do, nothing raised


def test_selected_pixels_round_trip_at_full_precision():
    img = _img()
    with T.session(pixels=[(4, 1), (0, 3)]) as s:
        tap("vec", img)
        tap("scalar", img[..., 0])
    recs = _records(s)
    assert recs[("vec", (4, 1), (), 0)] == tuple(img[4, 1])  # exact: repr round-trips
    assert recs[("scalar", (0, 3), (), 0)] == (img[0, 3, 0],)
    text = s.text()
    # the pixels come in the order given, each with its header
    assert text.index("spixel=4, fpixel=1") < text.index("spixel=0, fpixel=3")


def test_pixel_axes_variants_agree():
    img = _img()
    px = [(2, 2), (6, 4)]
    sidx = torch.tensor([6, 0, 2, 2]), torch.tensor([4, 0, 2, 3])
    flat_chunk = torch.tensor(img[sidx[0].numpy(), sidx[1].numpy()])
    with T.session(pixels=px, detector=(S, F)) as s:
        tap("plain", img)
        tap("moved", np.moveaxis(img, (0, 1), (1, 2)), pixel_axes=(1, 2))
        tap("flat_detector", img.reshape(S * F, 3), pixel_axes=0)
        tap("flat_chunk", flat_chunk, pixel_axes=0, pixels=sidx)
        tap("window", img[2:, 1:], origin=(2, 1))
    recs = _records(s)
    for p in px:
        want = tuple(img[p])
        for name in ("plain", "moved", "flat_detector", "flat_chunk", "window"):
            assert recs[(name, p, (), 0)] == want, name


def test_static_loop_and_integer_taps():
    with T.session(pixels=[(1, 1), (3, 2)]) as s:
        tap("fluence", 1e20, pixel_axes=None)
        tap("steps", np.int64(4), pixel_axes=None)
        tap("hkl_rounded", np.full((S, F, 3), 2, dtype=np.int32))
        for i in range(2):
            tap("h_frac", np.full((S, F), 0.5 + i), loop={"phi_tic": i, "phi_deg": 0.25 * i})
            tap("F_latt", np.full((S, F), 3.0 * i), loop={"phi_tic": i, "phi_deg": 0.25 * i})
    lines = s.text().splitlines()
    assert "TRACE_PY: steps 4" in lines and "TRACE_PY: hkl_rounded 2 2 2" in lines
    assert "TRACE_PY_PHI phi_tic=1 phi_deg=0.25 h_frac=1.5 F_latt=3.0" in lines
    recs = _records(s)
    assert recs[("fluence", (3, 2), (), 0)] == (1e20,)
    assert recs[("h_frac", (3, 2), (("phi_tic", 1),), 0)] == (1.5,)


def test_repeated_taps_count_occurrences():
    with T.session(pixels=[(0, 0)]) as s:
        for sub in range(3):
            tap("omega", np.full((S, F), float(sub)))
    recs = _records(s)
    assert [recs[("omega", (0, 0), (), k)] for k in range(3)] == [(0.0,), (1.0,), (2.0,)]


def test_region_dump_is_what_maps_reads(tmp_path):
    img = _img()
    dump = tmp_path / "taps.npz"
    with T.session(roi=(1, 3, 2, 5), dump=dump) as s:
        tap("vec", torch.tensor(img))
        tap("scalar", img[..., 0])
        tap("scalar", img[..., 0] + 1)           # the first value a tap takes is kept
        tap("static", 2.0, pixel_axes=None)
        tap("chunk", img[3:5, :, 0].reshape(-1), pixel_axes=0,
            pixels=(np.repeat([3, 4], F), np.tile(np.arange(F), 2)))
    assert s.text() == ""
    d = load_dump(dump)
    assert d.roi == (1, 3, 2, 5)
    np.testing.assert_array_equal(d.arrays["vec"], img[2:6, 1:4])
    np.testing.assert_array_equal(d.arrays["scalar"], img[2:6, 1:4, 0])
    assert np.all(d.arrays["static"] == 2.0)
    chunk = d.arrays["chunk"]
    np.testing.assert_array_equal(chunk[1:3], img[3:5, 1:4, 0])
    assert np.isnan(chunk[0]).all() and np.isnan(chunk[3]).all()  # never tapped there


def test_autograd_is_untouched():
    x = torch.linspace(0, 1, S * F, dtype=torch.float64).reshape(S, F).requires_grad_()
    with T.session(pixels=[(1, 2)]) as s:
        y = tap("y", x * x)
        assert y.requires_grad and y.grad_fn is not None
        y.sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach())
    assert _records(s)[("y", (1, 2), (), 0)] == (float(x.detach()[1, 2]) ** 2,)


def _reference(img, pixels):
    with T.session(pixels=pixels) as s:
        tap("vec", img)
        tap("fl", 7.0, pixel_axes=None)
    return Reference(s.trace())


def test_replay_numpy_replaces_only_traced_pixels():
    ref_img = _img()
    ref = _reference(ref_img, [(1, 1), (5, 4)])
    mine = np.zeros((S, F, 3))
    with T.session(replay=ref, replay_taps=["vec", "fl"]) as s:
        out = tap("vec", mine)
        fl = tap("fl", 1.0, pixel_axes=None)
    assert s.pixels == ((1, 1), (5, 4))  # the reference's pixels by default
    assert np.all(mine == 0)  # the port's own array is not modified
    np.testing.assert_array_equal(out[1, 1], ref_img[1, 1])
    np.testing.assert_array_equal(out[5, 4], ref_img[5, 4])
    out[1, 1] = out[5, 4] = 0
    assert np.all(out == 0) and fl == 7.0
    assert _records(s)[("vec", (5, 4), (), 0)] == tuple(ref_img[5, 4])  # the trace shows the replayed value


def test_replay_torch_is_differentiable_elsewhere():
    ref_img = _img()
    ref = _reference(ref_img, [(2, 3)])
    x = torch.ones(3, S, F, dtype=torch.float64, requires_grad=True)
    with T.session(replay=ref, replay_taps=["vec"]):
        y = tap("vec", x * 3, pixel_axes=(1, 2))
    assert y.shape == x.shape
    torch.testing.assert_close(y[:, 2, 3], torch.tensor(ref_img[2, 3]))
    y.sum().backward()
    assert torch.all(x.grad[:, 2, 3] == 0)  # the replayed elements are constants
    x.grad[:, 2, 3] = 3
    assert torch.all(x.grad == 3)


def test_replay_refuses_what_the_reference_lacks():
    ref = _reference(_img(), [(2, 3)])
    with pytest.raises(UsageError, match="never prints it"):
        with T.session(replay=ref, replay_taps=["nope"]):
            tap("nope", np.zeros((S, F)))
    with pytest.raises(UsageError, match="occurrence 1"):
        with T.session(replay=ref, replay_taps=["vec"]):
            tap("vec", np.zeros((S, F, 3)))
            tap("vec", np.zeros((S, F, 3)))
    with pytest.raises(UsageError, match="3 value"):
        with T.session(replay=ref, replay_taps=["vec"]):
            tap("vec", np.zeros((S, F)))


@pytest.mark.parametrize("bad, match", [
    (dict(pixel_axes=(0, 0)), "names one axis twice"),
    (dict(pixel_axes=(0, 5)), "does not exist"),
    (dict(pixel_axes=0), "flat pixel axis needs"),
    (dict(loop=[1]), "must be a dict"),
])
def test_bad_calls_are_one_line_errors(bad, match):
    with pytest.raises(UsageError, match=match):
        with T.session(pixels=[(0, 0)]):
            tap("x", np.zeros((S, F, 3)), **bad)
    assert T.current() is None


def test_one_session_at_a_time():
    with T.session(pixels=[(0, 0)]):
        with pytest.raises(UsageError, match="already active"):
            with T.session(pixels=[(1, 1)]):
                pass


def _pipeline(x):
    y = tap("y", torch.sin(x) * 2)
    z = tap("z", y.sum(dim=-1))
    return z * 3


def test_torch_compile_without_session_has_no_graph_break():
    x = torch.linspace(0, 1, S * F * 3, dtype=torch.float64).reshape(S, F, 3)
    torch._dynamo.reset()
    compiled = torch.compile(_pipeline, backend="eager", fullgraph=True)  # fullgraph: a break would raise
    torch.testing.assert_close(compiled(x), _pipeline(x), rtol=0, atol=0)


def test_torch_compile_with_session_traces_the_same_values():
    x = torch.linspace(0, 1, S * F * 3, dtype=torch.float64).reshape(S, F, 3)
    with T.session(pixels=[(3, 3)]) as eager:
        want = _pipeline(x)
    torch._dynamo.reset()
    compiled = torch.compile(_pipeline, backend="eager")
    with T.session(pixels=[(3, 3)]) as comp:
        got = compiled(x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert comp.text() == eager.text() != ""


def _env_run(code, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("NBTRACE_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)


PORT = "import numpy as np\nfrom nbtrace.tap import tap\nx = tap('x', np.arange(12.0).reshape(3, 4))\n"


def test_environment_starts_a_session_and_writes_at_exit(tmp_path):
    out = tmp_path / "port.log"
    r = _env_run(PORT, NBTRACE_PIXELS="2 1; 0 3", NBTRACE_OUT=str(out), NBTRACE_PREFIX="MYPORT")
    assert r.returncode == 0, r.stderr
    assert out.read_text() == ("TRACE_CONFIG: tracing pixel (spixel=2, fpixel=1)\nMYPORT: x 9.0\n"
                               "TRACE_CONFIG: tracing pixel (spixel=0, fpixel=3)\nMYPORT: x 3.0\n")
    r = _env_run(PORT, NBTRACE_PIXELS="2 1")  # stdout by default
    assert r.stdout.endswith("TRACE_PY: x 9.0\n")


def test_environment_never_seen_pixel_is_a_warning(tmp_path):
    r = _env_run(PORT, NBTRACE_PIXELS="9 9", NBTRACE_OUT=str(tmp_path / "o.log"))
    assert r.returncode == 0 and "pixel (9, 9) was never tapped" in r.stderr


@pytest.mark.parametrize("env, match", [
    ({"NBTRACE_PIXELS": "1 2 3"}, "is not 'slow fast'"),
    ({"NBTRACE_ROI": "1 2"}, "is not 4 integers"),
    ({"NBTRACE_PIXELS": "1 2", "NBTRACE_OUT": "/nonexistent/dir/x.log"}, "cannot write NBTRACE_OUT"),
    ({"NBTRACE_REPLAY_TAPS": "x"}, "NBTRACE_REPLAY is not"),
    ({"NBTRACE_PIXELS": "1 2", "NBTRACE_REPLAY": "/nonexistent.log"}, "nonexistent.log"),
])
def test_environment_bad_settings_exit_2_with_one_line(env, match):
    r = _env_run(PORT, **env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbtrace.tap: error:") and match in lines[0]


def test_pixel_axes_as_a_list_and_numpy_ints():
    img = _img()
    with T.session(pixels=[(3, 2)]) as s:
        tap("a", np.moveaxis(img, (0, 1), (1, 2)), pixel_axes=[1, 2])
        tap("b", img, pixel_axes=(np.int64(0), np.int64(1)))
    recs = _records(s)
    assert recs[("a", (3, 2), (), 0)] == recs[("b", (3, 2), (), 0)] == tuple(img[3, 2])


def test_where_masks_pixels_and_region(tmp_path):
    img = _img()
    s_idx, f_idx = np.array([1, 2, 3]), np.array([1, 1, 1])
    chunk = img[s_idx, f_idx, 0]
    shown = np.array([True, False, True])
    with T.session(pixels=[(1, 1), (2, 1), (3, 1)], roi=(0, 1, 0, 3), dump=tmp_path / "d.npz") as s:
        tap("masked", chunk, pixel_axes=0, pixels=(s_idx, f_idx), where=shown)
        tap("grid", img[..., 1], where=img[..., 1] > 0)
        tap("shared", 4.0, pixel_axes=None, pixels=(s_idx, f_idx), where=shown)
    recs = _records(s)
    assert ("masked", (2, 1), (), 0) not in recs and recs[("masked", (3, 1), (), 0)] == (chunk[2],)
    assert ("shared", (2, 1), (), 0) not in recs and recs[("shared", (1, 1), (), 0)] == (4.0,)
    for p in [(1, 1), (2, 1), (3, 1)]:
        assert (("grid", p, (), 0) in recs) == bool(img[p][1] > 0)
    d = load_dump(tmp_path / "d.npz")
    assert np.isnan(d.arrays["masked"][2, 1]) and d.arrays["masked"][3, 1] == chunk[2]
    assert np.isnan(d.arrays["masked"][0, 0])  # never tapped there


def test_consecutive_loop_taps_share_a_line_and_a_repeat_starts_a_new_one():
    with T.session(pixels=[(0, 0)]) as s:
        for sub in range(2):
            tap("k_frac", np.full((S, F), 1.0 + sub), loop={"phi_tic": 0})
            tap("F_latt", np.full((S, F), 2.0 + sub), loop={"phi_tic": 0})
            tap("F_cell", np.full((S, F), 3.0))
    assert s.lines_of((0, 0)) == ["TRACE_PY_PHI phi_tic=0 k_frac=1.0 F_latt=2.0", "TRACE_PY: F_cell 3.0",
                                  "TRACE_PY_PHI phi_tic=0 k_frac=2.0 F_latt=3.0", "TRACE_PY: F_cell 3.0"]
    assert _records(s)[("k_frac", (0, 0), (("phi_tic", 0),), 1)] == (2.0,)
