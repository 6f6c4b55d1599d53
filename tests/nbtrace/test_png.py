import struct
import zlib

import numpy as np

from nbtrace.figures.png import (
    decode_png, diverging, downsample_absmax, downsample_mode, draw_text, encode_png, image_panel, sequential,
)


def test_png_structure_and_roundtrip():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    data = encode_png(rgb)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (w, h, depth, colour) == (5, 7, 8, 2)
    crc = struct.unpack(">I", data[29:33])[0]
    assert crc == zlib.crc32(data[12:29]) & 0xFFFFFFFF
    np.testing.assert_array_equal(decode_png(data), rgb)


def test_colormaps_endpoints():
    assert sequential(np.array([0.0])).tolist() == [[0, 0, 4]]
    assert diverging(np.array([0.0])).tolist() == [[247, 247, 247]]
    lo, hi = diverging(np.array([-1.0, 1.0]))
    assert lo[2] > lo[0] and hi[0] > hi[2]  # blue for negative, red for positive


def test_downsample_keeps_single_hot_pixel():
    img = np.zeros((100, 100))
    img[37, 81] = -5.0
    small = downsample_absmax(img, 10)
    assert small.shape == (10, 10) and small.min() == -5.0
    lab = np.full((100, 100), -1)
    lab[99, 0] = 3
    assert downsample_mode(lab, 10)[9, 0] == 3


def test_text_draws_ink():
    c = np.full((10, 40, 3), 255, np.uint8)
    draw_text(c, "AB", 1, 1)
    assert (c == 0).any()


def test_image_panel_is_wide_and_labelled():
    a = np.zeros((16, 16))
    a[8, 8] = 100
    panel = image_panel(a, a * 2)
    assert panel.ndim == 3 and panel.shape[1] > 3 * 16 and panel.dtype == np.uint8
