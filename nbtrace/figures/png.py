"""A small PNG writer (zlib + struct), colormaps in numpy, a 5x7 bitmap font, and the panels
that compare/hunt/maps draw. No matplotlib or Pillow: the toolkit must run where only numpy is.

Canvases are uint8 arrays of shape (height, width, 3), RGB.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- PNG encoding


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (h, w, 3) uint8 array (8-bit truecolour, no interlace)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"encode_png needs (h, w, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w, _ = rgb.shape
    # filter type 0 (None) on every scanline: simple, and zlib does the compression work
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (h, w, 3) uint8 picture; UsageError (one line, with the path) if it cannot be written."""
    from nbtrace.errors import UsageError

    p = Path(path)
    data = encode_png(rgb)
    try:
        p.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write the PNG ({exc.strerror or exc})", str(p), "choose a writable path") from None
    return p


def decode_png(data: bytes) -> np.ndarray:
    """Inverse of encode_png for our own files (8-bit RGB, filter 0); used by tests and checks."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"bad CRC in {kind!r}")
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    if rows[:, 0].any():
        raise ValueError("only filter type 0 is supported")
    return rows[:, 1:].reshape(h, w, 3).copy()


# --------------------------------------------------------------------------- colormaps

# anchor colours chosen by eye: black -> purple -> orange -> pale yellow (an "inferno"-like ramp
# that stays readable in grey print)
_SEQ_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], float)
_DIV_ANCHORS = np.array([[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]], float)

CATEGORICAL = np.array([
    [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [170, 110, 40],
    [128, 0, 0], [170, 255, 195], [128, 128, 0], [0, 0, 128],
], np.uint8)
AGREE_COLOUR = np.array([40, 40, 40], np.uint8)
NODATA_COLOUR = np.array([255, 255, 255], np.uint8)


def _ramp(t: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    t = np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0)
    pos = t * (len(anchors) - 1)
    i = np.minimum(pos.astype(int), len(anchors) - 2)
    frac = (pos - i)[..., None]
    return (anchors[i] * (1 - frac) + anchors[i + 1] * frac).round().astype(np.uint8)


def sequential(t: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB (dark = low)."""
    return _ramp(t, _SEQ_ANCHORS)


def diverging(t: np.ndarray) -> np.ndarray:
    """Map values in [-1, 1] to RGB (blue negative, white 0, red positive)."""
    return _ramp((np.asarray(t) + 1.0) / 2.0, _DIV_ANCHORS)


# --------------------------------------------------------------------------- font

# 5x7 glyphs, seven rows of five ('#' = ink), drawn for this module
_GLYPHS = {
    'A': '.###. #...# #...# ##### #...# #...# #...#',
    'B': '####. #...# #...# ####. #...# #...# ####.',
    'C': '.###. #...# #.... #.... #.... #...# .###.',
    'D': '####. #...# #...# #...# #...# #...# ####.',
    'E': '##### #.... #.... ####. #.... #.... #####',
    'F': '##### #.... #.... ####. #.... #.... #....',
    'G': '.###. #...# #.... #.### #...# #...# .####',
    'H': '#...# #...# #...# ##### #...# #...# #...#',
    'I': '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
    'J': '..### ...#. ...#. ...#. ...#. #..#. .##..',
    'K': '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
    'L': '#.... #.... #.... #.... #.... #.... #####',
    'M': '#...# ##.## #.#.# #...# #...# #...# #...#',
    'N': '#...# #...# ##..# #.#.# #..## #...# #...#',
    'O': '.###. #...# #...# #...# #...# #...# .###.',
    'P': '####. #...# #...# ####. #.... #.... #....',
    'Q': '.###. #...# #...# #...# #.#.# #..#. .##.#',
    'R': '####. #...# #...# ####. #.#.. #..#. #...#',
    'S': '.#### #.... #.... .###. ....# ....# ####.',
    'T': '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
    'U': '#...# #...# #...# #...# #...# #...# .###.',
    'V': '#...# #...# #...# #...# #...# .#.#. ..#..',
    'W': '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
    'X': '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
    'Y': '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
    'Z': '##### ....# ...#. ..#.. .#... #.... #####',
    '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
    '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
    '2': '.###. #...# ....# ...#. ..#.. .#... #####',
    '3': '##### ...#. ..#.. ...#. ....# #...# .###.',
    '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
    '5': '##### #.... ####. ....# ....# #...# .###.',
    '6': '..##. .#... #.... ####. #...# #...# .###.',
    '7': '##### ....# ...#. ..#.. .#... .#... .#...',
    '8': '.###. #...# #...# .###. #...# #...# .###.',
    '9': '.###. #...# #...# .#### ....# ...#. .##..',
    ' ': '..... ..... ..... ..... ..... ..... .....',
    '.': '..... ..... ..... ..... ..... .##.. .##..',
    ',': '..... ..... ..... ..... .##.. ..#.. .#...',
    '-': '..... ..... ..... ##### ..... ..... .....',
    '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
    ':': '..... .##.. .##.. ..... .##.. .##.. .....',
    '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
    ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
    '/': '..... ....# ...#. ..#.. .#... #.... .....',
    '=': '..... ..... ##### ..... ##### ..... .....',
    '_': '..... ..... ..... ..... ..... ..... #####',
    '%': '##... ##..# ...#. ..#.. .#... #..## ...##',
    '<': '...#. ..#.. .#... #.... .#... ..#.. ...#.',
    '>': '.#... ..#.. ...#. ....# ...#. ..#.. .#...',
    '|': '..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
    ';': '..... .##.. .##.. ..... .##.. ..#.. .#...',
    "'": '..#.. ..#.. .#... ..... ..... ..... .....',
    '*': '..... ..#.. #.#.# .###. #.#.# ..#.. .....',
    '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.',
    '[': '.###. .#... .#... .#... .#... .#... .###.',
    ']': '.###. ...#. ...#. ...#. ...#. ...#. .###.',
    '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
    '~': '..... ..... .#..# #.##. ..... ..... .....',
    '^': '..#.. .#.#. #...# ..... ..... ..... .....',
}
FONT_W, FONT_H = 5, 7


def _glyph(ch: str) -> np.ndarray:
    rows = _GLYPHS.get(ch) or _GLYPHS.get(ch.upper()) or _GLYPHS["?"]
    return np.array([[c == "#" for c in row] for row in rows.split()], bool)


def text_width(text: str, scale: int = 1) -> int:
    return len(text) * (FONT_W + 1) * scale


def draw_text(canvas: np.ndarray, text: str, x: int, y: int, colour=(0, 0, 0), scale: int = 1) -> None:
    """Draw ``text`` with its top-left corner at (x, y); clipped at the canvas border."""
    h, w, _ = canvas.shape
    for k, ch in enumerate(text):
        g = np.kron(_glyph(ch), np.ones((scale, scale), bool))
        x0 = x + k * (FONT_W + 1) * scale
        ys, xs = np.nonzero(g)
        ys, xs = ys + y, xs + x0
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        canvas[ys[keep], xs[keep]] = colour


# --------------------------------------------------------------------------- panels


def downsample_absmax(img: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink by an integer factor keeping, in each block, the value of largest magnitude, so a
    single hot or divergent pixel survives the thumbnail."""
    f = max(1, -(-max(img.shape) // max_side))
    if f == 1:
        return img
    s, w = img.shape
    pad = np.pad(img, ((0, (-s) % f), (0, (-w) % f)))
    blocks = pad.reshape(pad.shape[0] // f, f, pad.shape[1] // f, f).transpose(0, 2, 1, 3).reshape(
        pad.shape[0] // f, pad.shape[1] // f, f * f)
    pick = np.abs(blocks).argmax(-1)
    return np.take_along_axis(blocks, pick[..., None], -1)[..., 0]


def downsample_mode(labels: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink an int label map keeping the largest label of each block (divergent labels are
    >= 0 and 'agree' is -1, so a block shows a divergence if any pixel in it diverges)."""
    f = max(1, -(-max(labels.shape) // max_side))
    if f == 1:
        return labels
    s, w = labels.shape
    pad = np.pad(labels, ((0, (-s) % f), (0, (-w) % f)), constant_values=-2)
    return pad.reshape(pad.shape[0] // f, f, pad.shape[1] // f, f).max(axis=(1, 3))


def _upscale(rgb: np.ndarray, min_side: int) -> np.ndarray:
    f = max(1, min_side // max(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, f, 0), f, 1) if f > 1 else rgb


def log_intensity_rgb(img: np.ndarray, vmax: float) -> np.ndarray:
    """log10(1 + I) scaled to log10(1 + vmax); photons in, RGB out."""
    scale = np.log10(1.0 + max(vmax, 0.0)) or 1.0
    return sequential(np.log10(1.0 + np.clip(np.nan_to_num(img), 0, None)) / scale)


def signed_log_rgb(diff: np.ndarray) -> tuple[np.ndarray, float]:
    """sign(d)·log10(1 + |d|) scaled to the largest |d|; returns (RGB, max |d|)."""
    d = np.nan_to_num(diff)
    m = float(np.abs(d).max()) if d.size else 0.0
    scale = np.log10(1.0 + m) or 1.0
    return diverging(np.sign(d) * np.log10(1.0 + np.abs(d)) / scale), m


def compose(panels: list[tuple[str, np.ndarray]], footer: list[str], pad: int = 8, label_h: int = 18) -> np.ndarray:
    """Lay out titled RGB panels side by side on white, with footer text lines beneath."""
    ph = max((p.shape[0] for _, p in panels), default=0)
    if not panels:
        label_h = 0
    width = pad + sum(max(p.shape[1], text_width(t)) + pad for t, p in panels)
    width = max(width, pad * 2 + max((text_width(s) for s in footer), default=0))
    height = pad + label_h + ph + pad + len(footer) * (FONT_H + 5) + pad
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = pad
    for title, p in panels:
        draw_text(canvas, title, x, pad)
        canvas[pad + label_h: pad + label_h + p.shape[0], x: x + p.shape[1]] = p
        x += max(p.shape[1], text_width(title)) + pad
    y = pad + label_h + ph + pad
    for line in footer:
        draw_text(canvas, line, pad, y)
        y += FONT_H + 5
    return canvas


def image_panel(a: np.ndarray, b: np.ndarray, names=("A", "B"), max_side: int = 384) -> np.ndarray:
    """A, B (common log scale) and the signed log difference B − A, side by side, labelled."""
    vmax = float(np.nanmax([np.nanmax(a), np.nanmax(b)]))
    da, db = downsample_absmax(a, max_side), downsample_absmax(b, max_side)
    dd = downsample_absmax(np.nan_to_num(b) - np.nan_to_num(a), max_side)
    diff_rgb, m = signed_log_rgb(dd)
    side = 192
    panels = [
        (f"A: {names[0]}"[:40], _upscale(log_intensity_rgb(da, vmax), side)),
        (f"B: {names[1]}"[:40], _upscale(log_intensity_rgb(db, vmax), side)),
        ("B - A (signed log)", _upscale(diff_rgb, side)),
    ]
    factor = max(1, -(-max(a.shape) // max_side))
    footer = [
        f"A, B: log10(1+I), black 0 .. yellow {vmax:.4g} photons; slow axis down, fast axis right",
        f"B - A: red B>A, blue B<A, white equal; max |B-A| = {m:.4g} photons",
    ]
    if factor > 1:
        footer.append(f"shown at 1/{factor} ({a.shape[0]}x{a.shape[1]} image), each block keeps its largest value")
    return compose(panels, footer)


def legend_rows(items: list[tuple[np.ndarray, str]], width: int, pad: int = 8) -> np.ndarray:
    """Colour swatch + text per line, as a white RGB strip of the given width."""
    line_h = FONT_H + 6
    strip = np.full((pad + line_h * len(items) + pad, width, 3), 255, np.uint8)
    for k, (colour, text) in enumerate(items):
        y = pad + k * line_h
        strip[y: y + FONT_H + 1, pad: pad + 10] = colour
        draw_text(strip, text, pad + 16, y)
    return strip
