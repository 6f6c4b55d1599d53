"""nbtrace_tap.h: compiles in a plain C99 program, prints round-tripping taps only for traced pixels,
vanishes without NBTRACE_ENABLE, and writes .npz files numpy reads."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

PROGRAM = r"""
#include <stdio.h>
#include "nbtrace_tap.h"

int main(int argc, char **argv)
{
    int s, f;
    double third = 1.0 / 3.0, v[3] = {0.1, -2.5e-30, 7e300};
    double nb[4] = {99, 1.5, 2.5, 3.5};
    double m[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    long hkl[3] = {-1, 0, 2};
    (void)argc; (void)argv;
    NBT_BEGIN("TRACE_T");
    NBT_TRACE_PIXEL(1, 2);
    NBT_REGION_BEGIN(0, 2, 1, 2);            /* fast 0..2, slow 1..2 */
    NBT_SETUP_STR("producer", "tap-test");
    NBT_SETUP_NUM("third", third);
    NBT_SETUP_VEC3("vec", v);
    NBT_SETUP_MAT33("mat", m);
    for (s = 0; s < 3; s++)
        for (f = 0; f < 3; f++) {
            NBT_PIXEL_BEGIN(s, f);
            NBT_SCALAR("value", 10.0 * s + f + third);
            NBT_SCALAR("value", -1.0);       /* a later occurrence prints, the dump keeps the first */
            NBT_VEC3("vec", v);
            NBT_NBVEC("nbvec", nb);
            NBT_IVEC3("hkl_rounded", hkl);
            NBT_INT("steps", 4);
            NBT_MAT33("mat", m);
            if (NBT_PRINTING) {
                NBT_LOOP_BEGIN("PHI");
                NBT_LOOP_INT("phi_tic", 0);
                NBT_LOOP_NUM("phi_deg", third);
                NBT_LOOP_END();
            }
            NBT_PIXEL_END();
        }
    if (NBT_REGION_WRITE("dump.npz", "{\"producer\": \"tap-test\"}") != 0) return 3;
    NBT_END();
    return 0;
}
"""


def _build(cc, header, tmp_path, *defines, name="prog"):
    src = tmp_path / f"{name}.c"
    src.write_text(PROGRAM)
    exe = tmp_path / name
    cmd = [cc, "-std=c99", "-pedantic", "-Wall", "-Werror", "-Wno-unused-function",
           "-Wno-unused-variable", "-O1",
           f"-I{header.parent}", *defines, str(src), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return exe


@pytest.fixture
def enabled(c_compiler, tap_header, tmp_path):
    exe = _build(c_compiler, tap_header, tmp_path, "-DNBTRACE_ENABLE", name="on")
    res = subprocess.run([str(exe)], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    return res.stdout, tmp_path / "dump.npz"


def test_only_the_traced_pixel_prints_in_the_space_dialect(enabled):
    out, _ = enabled
    lines = out.splitlines()
    headers = [ln for ln in lines if ln.startswith("TRACE_CONFIG")]
    assert headers == ["TRACE_CONFIG: tracing pixel (spixel=1, fpixel=2)"]
    body = lines[lines.index(headers[0]) + 1:]
    assert [ln for ln in body if ln.startswith("TRACE_T_PHI")] == ["TRACE_T_PHI phi_tic=0 phi_deg=0.33333333333333331"]
    assert "TRACE_T: value -1" in body
    assert "TRACE_T: vec 0.10000000000000001 -2.4999999999999999e-30 6.9999999999999998e+300" in body
    assert "TRACE_T: nbvec 1.5 2.5 3.5" in body
    assert "TRACE_T: hkl_rounded -1 0 2" in body
    assert "TRACE_T: steps 4" in body
    assert "TRACE_T: mat 1 2 3 4 5 6 7 8 9" in body


def test_numbers_round_trip_exactly(enabled):
    out, _ = enabled
    value = next(ln for ln in out.splitlines() if ln.startswith("TRACE_T: value ") and not ln.endswith(" -1"))
    assert float(value.split()[-1]) == 10.0 * 1 + 2 + 1.0 / 3.0
    third = next(ln for ln in out.splitlines() if ln.startswith("TRACE_T:third="))
    assert float(third.split("=", 1)[1]) == 1.0 / 3.0
    phi = next(ln for ln in out.splitlines() if ln.startswith("TRACE_T_PHI"))
    assert float(phi.split("phi_deg=")[1]) == 1.0 / 3.0


def test_setup_block_uses_the_equals_form(enabled):
    out, _ = enabled
    assert out.splitlines()[:2] == ["TRACE_T:producer=tap-test", "TRACE_T:third=0.33333333333333331"]
    assert "TRACE_T:mat=[1 2 3; 4 5 6; 7 8 9]" in out.splitlines()


def test_region_dump_is_an_npz_numpy_reads(enabled):
    _, path = enabled
    with np.load(path) as z:
        names = set(z.files)
        assert {"value", "vec", "nbvec", "hkl_rounded", "steps", "mat", "roi", "meta_json"} <= names
        value = z["value"]
        assert value.shape == (2, 3) and value.dtype == np.float64
        expect = np.array([[10.0 * s + f + 1.0 / 3.0 for f in range(3)] for s in (1, 2)])
        np.testing.assert_array_equal(value, expect)  # first occurrence, not the later -1
        assert z["vec"].shape == (2, 3, 3)
        np.testing.assert_array_equal(z["vec"][1, 2], [0.1, -2.5e-30, 7e300])
        np.testing.assert_array_equal(z["hkl_rounded"][0, 0], [-1, 0, 2])
        assert z["roi"].dtype == np.int64 and z["roi"].tolist() == [0, 2, 1, 2]
        assert json.loads(bytes(z["meta_json"]).decode()) == {"producer": "tap-test"}


def test_disabled_build_prints_nothing_and_has_no_tap_symbols(c_compiler, tap_header, tmp_path):
    exe = _build(c_compiler, tap_header, tmp_path, name="off")
    res = subprocess.run([str(exe)], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout == ""
    assert not (tmp_path / "dump.npz").exists()
    obj = tmp_path / "off.o"
    subprocess.run([c_compiler, "-std=c99", "-O0", f"-I{tap_header.parent}", "-c", str(tmp_path / "off.c"),
                    "-o", str(obj)], check=True)
    syms = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    assert "nbt_" not in syms
    # the strings of tap names are gone too: the macros did not evaluate their arguments
    assert b"hkl_rounded" not in obj.read_bytes()


def test_enabled_object_does_carry_the_library(c_compiler, tap_header, tmp_path):
    # guards the previous test: the same nm check does see the symbols when tracing is on
    src = tmp_path / "on.c"
    src.write_text(PROGRAM)
    obj = tmp_path / "on.o"
    subprocess.run([c_compiler, "-std=c99", "-O0", "-DNBTRACE_ENABLE", f"-I{tap_header.parent}", "-c", str(src),
                    "-o", str(obj)], check=True)
    syms = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    assert "nbt_" in syms
