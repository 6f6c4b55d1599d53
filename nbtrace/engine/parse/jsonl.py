"""JSON Lines traces: one object per line, the structured dialect (format in tap_specs/README.md).

    {"name": "pixel_pos_meters", "values": [0.1, 0, 0.006], "pixel": [64, 79], "unit": "m"}
    {"name": "k_frac", "values": -0.607, "pixel": [64, 79], "loop": {"phi_tic": 0}}
    {"meta": {"producer": "my-port 1.2", "dtype": "float64"}}

Numbers are binary-exact in JSON, so records count 17 significant digits unless the object says
``"sigdigits"``. Non-finite values may be written as NaN/Infinity or as the strings "nan", "inf".
"""

from __future__ import annotations

import difflib
import json
import math
from collections import Counter
from typing import Iterable

from nbtrace.errors import TraceError
from nbtrace.engine.model import SourceLoc, TapIndex, TapRecord, Trace
from nbtrace.engine.parse.numbers import EXACT, shown

KEYS = ("name", "values", "value", "pixel", "loop", "unit", "sigdigits", "occurrence", "meta")
MAX_LINE = 1 << 22  # characters of one JSON line (a tap is a few hundred)
INDEX_MAX = 2**31  # pixels, loop indices and occurrences: far beyond any run, safe in every int64 sum
_NONFINITE = {"nan": math.nan, "-nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf,
              "infinity": math.inf, "-infinity": -math.inf}


class JsonlParser:
    def __init__(self, path: str):
        self.path = path
        self.records: list[TapRecord] = []
        self.occ: dict = {}
        self.pixels: list[tuple[int, int]] = []
        self.meta: dict = {}
        self.blank = 0
        self.last_line = 0

    def feed(self, lines: Iterable[str]) -> None:
        for raw in lines:
            self.last_line += 1
            if len(raw) > MAX_LINE:
                raise TraceError(f"a JSON line of more than {MAX_LINE >> 20} MB", self._where(self.last_line),
                                 "one tap per line: {\"name\": ..., \"values\": [...]}")
            line = raw.strip()
            if not line:
                self.blank += 1
                continue
            self._object(self._load(line, self.last_line), self.last_line)

    def _where(self, lineno: int, col: int | None = None) -> str:
        return f"{self.path}:{lineno}" + (f":{col}" if col else "")

    def _load(self, line: str, lineno: int) -> dict:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(f"malformed JSON line: {exc.msg}", self._where(lineno, exc.colno),
                             "each line of a JSON Lines trace is one complete JSON object") from None
        except RecursionError:
            raise TraceError("a JSON line nested too deep to read", self._where(lineno),
                             "a tap line is a flat object: {\"name\": ..., \"values\": [...]}") from None
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            raise TraceError(f"malformed JSON line: {shown(str(exc), 80)}", self._where(lineno),
                             "numbers are doubles; write long values with an exponent") from None
        if not isinstance(obj, dict):
            raise TraceError(f"a JSON line must be an object, got {type(obj).__name__}", self._where(lineno),
                             'write {"name": ..., "values": [...]} per line')
        return obj

    def _object(self, obj: dict, lineno: int) -> None:
        for key in obj:
            if key not in KEYS:
                close = difflib.get_close_matches(key, KEYS, n=1) if len(key) <= 40 else []
                hint = f"did you mean {close[0]!r}?" if close else "keys: " + ", ".join(KEYS)
                raise TraceError(f"unknown key {shown(key)} in a JSON trace line", self._where(lineno), hint)
        if "meta" in obj:
            if not isinstance(obj["meta"], dict) or len(obj) != 1:
                raise TraceError("a meta line is {\"meta\": {...}} alone", self._where(lineno),
                                 "put provenance on its own line, taps on theirs")
            self.meta.update(obj["meta"])
            return
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            raise TraceError("a JSON trace line without a \"name\"", self._where(lineno),
                             'write {"name": "tap", "values": [...]}')
        values = self._values(obj, name, lineno)
        pixel = self._pixel(obj.get("pixel"), lineno)
        loop = self._loop(obj.get("loop"), lineno)
        occurrence = self._occurrence(obj, name, pixel, loop, lineno)
        digits = obj.get("sigdigits", EXACT)
        if not isinstance(digits, int) or isinstance(digits, bool) or not 1 <= digits <= EXACT:
            raise TraceError(f"\"sigdigits\" must be an integer 1..17, got {shown(digits)}", self._where(lineno),
                             "the significant digits the producer printed, 17 for %.17g")
        unit = obj.get("unit")
        if unit is not None and not isinstance(unit, str):
            raise TraceError("\"unit\" must be a string", self._where(lineno), 'e.g. "unit": "m"')
        kind, text = ("string", values) if isinstance(values, str) else ("number", None)
        self.records.append(TapRecord(name, () if text is not None else values,
                                      TapIndex(pixel, loop, occurrence), SourceLoc(self.path, lineno),
                                      digits, kind, text, (), "jsonl", unit))

    def _values(self, obj: dict, name: str, lineno: int):
        if "values" in obj and "value" in obj:
            raise TraceError("both \"values\" and \"value\"", self._where(lineno), "give one of them")
        raw = obj.get("values", obj.get("value"))
        if raw is None:
            raise TraceError(f"tap {shown(name)} has no \"values\"", self._where(lineno),
                             'write "values": [1.0, 2.0] or "values": 1.0')
        if isinstance(raw, str) and raw.strip().lower() not in _NONFINITE:
            return raw
        items = raw if isinstance(raw, list) else [raw]
        out = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, float, str)):
                raise TraceError(f"tap {shown(name)} has a non-numeric value {shown(item)}", self._where(lineno),
                                 "values are numbers (or \"nan\", \"inf\", \"-inf\")")
            if isinstance(item, str):
                if item.strip().lower() not in _NONFINITE:
                    raise TraceError(f"tap {shown(name)} has a non-numeric value {shown(item)}", self._where(lineno),
                                     "values are numbers (or \"nan\", \"inf\", \"-inf\")")
                out.append(_NONFINITE[item.strip().lower()])
            else:
                try:
                    out.append(float(item))
                except OverflowError:  # an integer beyond the double range
                    raise TraceError(f"tap {shown(name)} has a value too large for a double ({len(str(item))} digits)",
                                     self._where(lineno), "write it with an exponent, or as \"inf\"") from None
        if not out:
            raise TraceError(f"tap {shown(name)} has an empty \"values\" list", self._where(lineno),
                             "give at least one number")
        return tuple(out)

    def _pixel(self, raw, lineno: int) -> tuple[int, int] | None:
        if raw is None:
            return None
        if (not isinstance(raw, list) or len(raw) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and abs(v) < INDEX_MAX for v in raw)):
            raise TraceError(f"\"pixel\" must be [slow, fast] integers, got {shown(raw, 60)}", self._where(lineno),
                             f'e.g. "pixel": [64, 79] (slow first; each below {INDEX_MAX})')
        pixel = (raw[0], raw[1])
        if pixel not in self.pixels:
            self.pixels.append(pixel)
        return pixel

    def _loop(self, raw, lineno: int) -> tuple[tuple[str, int], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) and abs(v) < INDEX_MAX for v in raw.values()):
            raise TraceError(f"\"loop\" must map loop keys to integers, got {shown(raw, 60)}", self._where(lineno),
                             f'e.g. "loop": {{"phi_tic": 3}} (each below {INDEX_MAX})')
        return tuple(sorted(raw.items()))

    def _occurrence(self, obj, name, pixel, loop, lineno) -> int:
        key = (name, pixel, loop)
        n = self.occ.get(key, 0)
        self.occ[key] = n + 1
        given = obj.get("occurrence")
        if given is None:
            return n
        if not isinstance(given, int) or isinstance(given, bool) or not 0 <= given < INDEX_MAX:
            raise TraceError(f"\"occurrence\" must be an integer 0..{INDEX_MAX - 1}, got {shown(given, 40)}",
                             self._where(lineno), "or leave it out to count repeats automatically")
        return given

    def finish(self, *, ends_with_newline: bool, tried: str) -> Trace:
        if not self.records:
            raise TraceError("no trace lines found", self.path,
                             f"dialects tried: {tried}; the JSON lines hold no tap objects")
        meta = dict(self.meta)
        meta.update({
            "lines": self.last_line, "blank_lines": self.blank, "ignored_lines": 0, "context_lines": 0,
            "header_lines": 0, "unread_lines": 0, "warnings": [], "dialects": dict(Counter({"jsonl": len(self.records)})),
            "format_digits": {}, "prefixes": {},
        })
        return Trace(path=self.path, records=tuple(self.records), prefix=None, dialect="jsonl",
                     pixels=tuple(self.pixels), context=(), meta=meta)
