"""The end of a line parse: which prefix is the producer, which prefixes belong to it, what was not
read, and the Trace.

A file holds records per prefix group. One family is the producer: a root prefix (``TRACE_C``)
and every prefix that extends it (``TRACE_C_SOURCE2``, ``TRACE_C_TAP4``; loop lines such as
``TRACE_C_PHI phi_tic=…`` are filed under the root as they are read). An extension is the
producer's auxiliary family: ``SOURCE2`` / ``PHI3`` / ``MOS1`` / ``SRC0`` name a loop index,
any other suffix qualifies the names (``TAP4_h``), so nothing meets a per-pixel tap by accident.

Another root is judged by the names it shares with the producer's own:

* ``MIN_COMPETING`` or more shared names, on as many lines: a second producer; the file is
  refused (select one with ``prefix=``);
* some shared names, or any ``PREFIX: name value`` line (the per-pixel form): stray lines of
  another producer, ignored with a warning that names them;
* otherwise, a ``TRACE`` prefix (``TRACE_ROTATE:x=…``, ``TRACE_BEAM_CENTER:…``): another
  auxiliary family of the same run, read with qualified names (``TRACE_ROTATE_input_vector``);
* otherwise (``WARNING: x 1``): ignored with a warning. A non-TRACE prefix whose every record
  is text ("Note: using default F") is a banner, counted as an ignored line.

``TRACE:`` lines, the earlier port's (``TRACE: hkl_frac 1 2 3``) and the C's narrative crystal
block (nbtrace.engine.parse.freetext), are the taps when no prefix has any, else setup context
beside the prefixed taps (a port prints no such block: as taps they would make every C-vs-port
diff one-sided).
"""

from __future__ import annotations

import re

import numpy as np

from nbtrace.errors import TraceError
from nbtrace.engine.model import LazyRecords, RecordColumns, SourceLoc, Trace
from nbtrace.engine.parse.group import Group, dialect_digits, occurrences
from nbtrace.engine.parse.numbers import shown as shown_value

FREE = "TRACE"  # free-text prefix of the C build and the earlier port
CRYSTAL = "TRACE "  # the group of the C's narrative crystal block (not a printable prefix)
MIN_COMPETING = 3  # shared tap names (and lines) that make a second prefix a second producer
LOOP_FAMILY = re.compile(r"^(PHI|MOS|SOURCE|SRC|SUB|LAYER|THICK)_?([0-9]{1,9})$")
LOOP_FAMILY_KEYS = {"PHI": "phi_tic", "MOS": "mos_tic", "SOURCE": "source", "SRC": "source",
                    "SUB": "subpixel", "LAYER": "layer", "THICK": "thick"}
UNREAD_SHOWN = 5  # not-read lines a warning names one by one


class Finisher:
    """The end of LineParser (a mixin: it shares the parser's state)."""

    def finish(self, *, ends_with_newline: bool, tried: str) -> Trace:
        if self.nul_line:
            raise TraceError("binary content (NUL byte)", f"{self.path}:{self.nul_line}",
                             "this is not a text trace; give the producer's stdout log")
        self.ignored_prefixes = self.ignored_more = 0
        plan = self._plan(tried)
        self._ignored_summary()
        chosen = plan[0][0]
        # a family of the producer whose every line failed (no record, so not in the plan) is
        # reported too, never silently ignored
        planned = {id(g) for g, _ in plan}
        failed = [g for p, g in self.groups.items() if id(g) not in planned and not g.lines and g.pending
                  and p.startswith(chosen.prefix + "_")]
        self._report_unread([g for g, _ in plan] + failed, ends_with_newline)
        if not ends_with_newline and self.last_line and any(
                g.lines and g.last_line() == self.last_line for g, _ in plan):
            self.warnings.append(f"{self.path}:{self.last_line}: the last line has no newline; "
                                 "the trace may be truncated (the value was kept as printed)")
        return self._trace(FREE if chosen.prefix == CRYSTAL else chosen.prefix, plan)

    # ------------------------------------------------------------------ which groups
    def _plan(self, tried: str) -> list[tuple[Group, tuple]]:
        """[(group, (qualifier, loop))]: the groups the trace is made of, the producer's first.
        Groups left out become context or ignored lines (with a warning)."""
        groups = {p: g for p, g in self.groups.items() if g.lines and p not in (FREE, CRYSTAL)}
        banners = {p for p, g in groups.items() if g.strings == g.lines and "TRACE" not in p.upper()}
        real = {p: g for p, g in groups.items() if p not in banners}
        free, crystal = self.groups.get(FREE), self.groups.get(CRYSTAL)
        if self.want_prefix is not None:
            if self.want_prefix not in real:
                seen = ", ".join(sorted(real) + ([FREE] if free is not None and free.lines else [])) or "none"
                if self.want_prefix == FREE and free is not None and free.lines:
                    return self._free_plan(free, crystal, real, banners)
                raise TraceError(f"no taps with prefix {self.want_prefix!r}", self.path,
                                 f"prefixes with taps in this file: {seen}")
            main = self.want_prefix
        elif not real:
            if (free is None or not free.lines) and (crystal is None or not crystal.lines):
                raise self._nothing_found(tried)
            return self._free_plan(free, crystal, real, banners)
        else:
            main = None
        roots = {p: _root(p, real) for p in real}
        if main is not None and roots[main] != main:  # the wanted prefix extends another: its own family here
            roots = {p: (main if p == main or p.startswith(main + "_") else r) for p, r in roots.items()}
        size: dict[str, int] = {}
        for p, r in roots.items():
            size[r] = size.get(r, 0) + real[p].lines
        if main is None:
            main = sorted(size, key=lambda r: -size[r])[0]
        # (a name table of a million records costs a sort: only when another root needs judging)
        main_names = self._names_of(real[main]) if len(size) > 1 else set()
        plan = [(real[main], (None, ()))]
        members: dict[str, list[str]] = {}
        for p, r in roots.items():
            members.setdefault(r, []).append(p)
        fate: dict[str, str] = {}
        for r in size:
            if r == main:
                continue
            shared = main_names & self._names_of(real[r])
            if len(shared) >= MIN_COMPETING and size[r] >= MIN_COMPETING and self.want_prefix is None:
                self._refuse_two(real[main], real[r], size[main], size[r])
            producer = shared or any(real[p].spaced() for p in members[r])
            aux = not producer and self.want_prefix is None and "TRACE" in r.upper()
            fate[r] = "aux" if aux else "ignore"
        for p, r in roots.items():
            if p == main:
                continue
            if r == main:
                plan.append((real[p], _family_member(p[len(main) + 1:])))
            elif fate[r] == "aux":
                plan.append((real[p], (p, ())))
            else:
                self._ignore(real[p], main)
        for g in (free, crystal):
            if g is not None and g.lines:
                self.context.extend((SourceLoc(self.path, ln), self.free_lines[ln])
                                    for ln in sorted(set(g.column(2).tolist())))
        self._count_banners(banners)
        return plan

    def _free_plan(self, free, crystal, real, banners):
        for p, g in real.items():
            self._ignore(g, FREE)
        self._count_banners(banners)
        plan = [(g, (None, ())) for g in (free, crystal) if g is not None and g.lines]
        return plan

    def _count_banners(self, banners) -> None:
        for p in banners:
            self.counts["ignored_lines"] += len(set(self.groups[p].column(2).tolist()))

    def _names_of(self, g: Group) -> set[str]:
        return {self.name_list[c] for c in np.unique(g.column(0)).tolist()}

    def _refuse_two(self, a: Group, b: Group, size_a: int, size_b: int):
        first_b = int(b.column(2).min())
        raise TraceError(
            f"the file mixes two tap prefixes, {a.prefix} ({size_a} taps) and {b.prefix} "
            f"({size_b} taps, the first here)", f"{self.path}:{first_b}",
            f"split the log per producer (grep '^{a.prefix}[:_ ]'), or select one with "
            f"prefix={a.prefix!r} (Python) / --prefix-a and --prefix-b, one of {a.prefix}, {b.prefix} each "
            f"(nbtrace diff) / --prefix {a.prefix} (nbtrace taps init)")

    def _ignore(self, g: Group, chosen: str) -> None:
        lines = sorted(set(g.column(2).tolist()))
        self.counts["ignored_lines"] += len(lines)
        self.ignored_prefixes += 1
        if self.ignored_prefixes > UNREAD_SHOWN:  # a flood of made-up prefixes: one summary line
            self.ignored_more += len(lines)
            return
        shown = ", ".join(f"{self.path}:{ln}" for ln in lines[:UNREAD_SHOWN]) + (", …" if len(lines) > UNREAD_SHOWN else "")
        self.warnings.append(f"{self.path}: {len(lines)} line(s) with prefix {shown_value(g.prefix)} ignored "
                             f"(the taps are {shown_value(chosen)}; first at line {lines[0]}): {shown}")

    def _ignored_summary(self) -> None:
        if self.ignored_prefixes > UNREAD_SHOWN:
            self.warnings.append(f"{self.path}: {self.ignored_more} more line(s) with "
                                 f"{self.ignored_prefixes - UNREAD_SHOWN} other prefixes ignored")

    def _nothing_found(self, tried: str) -> TraceError:
        if self.diff_marks >= 2:
            return TraceError("a unified diff of two traces, not a trace", self.path,
                              "diff the two logs it compares (named on its '---' and '+++' lines) instead")
        candidates = [(ln, what) for g in self.groups.values() for ln, what, _, _ in g.pending]
        hint = f"dialects tried: {tried}; a tap line looks like 'TRACE_C: name 1.5 2.5'"
        if candidates:
            ln, what = min(candidates)
            hint += f"; the nearest candidate, line {ln}: {what}"
        return TraceError("no trace lines found", self.path, hint)

    # ------------------------------------------------------------------ what was not read
    def _report_unread(self, groups: list[Group], ends_with_newline: bool) -> None:
        """Lines of the producer that could not be read: kept as context, counted, and named in
        one warning (they never refuse the file). An arity change on a last line that has no
        newline is a truncated vector: kept as printed, with its own warning."""
        unread = list(self.unread)
        truncated = not ends_with_newline
        for g in groups:
            for lineno, what, hint, kind in g.pending:
                if truncated and lineno == self.last_line:
                    if kind == "arity":  # keep the record: a vector cut short, as printed
                        for pos in [p for p, ln in g.drop.items() if ln == lineno]:
                            del g.drop[pos]
                        self.warnings.append(f"{self.path}:{lineno}: {what}; the file ends without a newline, "
                                             "so the last line looks truncated")
                        continue
                    what = f"the file ends mid-line: {what}"
                unread.append((lineno, what))
                self._keep_as_context(lineno, kind)
        if not unread:
            return
        unread.sort()
        self.counts["unread_lines"] = len(unread)
        shown = ", ".join(f"{self.path}:{ln} ({what})" for ln, what in unread[:UNREAD_SHOWN])
        more = f", and {len(unread) - UNREAD_SHOWN} more" if len(unread) > UNREAD_SHOWN else ""
        self.warnings.append(f"{len(unread)} line(s) not read: {shown}{more}")

    def _keep_as_context(self, lineno: int, kind: str) -> None:
        """A reported line joins the context (it was counted as ignored, or, for a dropped
        arity change, not at all)."""
        text = self.unread_text.pop(lineno, None)
        if text is None:
            return  # a line partly read (a loop line with one bad value): its records stand
        if kind != "arity":
            self.counts["ignored_lines"] -= 1
        self.context.append((SourceLoc(self.path, lineno), text))

    # ------------------------------------------------------------------ the Trace
    def _trace(self, prefix: str, plan) -> Trace:
        self.context.sort(key=lambda c: c[0].line)
        columns, extras = self._merged(plan)
        for pos, rec in extras.items():
            n = int(columns.occurrence[pos])
            if n:
                extras[pos] = rec._replace(index=rec.index._replace(occurrence=n))
        dialects, digits = dialect_digits(columns, extras)
        meta = {
            "lines": self.last_line,
            "blank_lines": self.counts["blank_lines"],
            "ignored_lines": self.counts["ignored_lines"],
            "context_lines": len(self.context),
            "header_lines": self.counts["header_lines"],
            "unread_lines": self.counts["unread_lines"],
            "warnings": self.warnings,
            "dialects": dialects,
            "format_digits": digits,
            "prefixes": {p: g.lines for p, g in self.groups.items() if g.lines and p != CRYSTAL},
        }
        if self.pivot is not None:
            meta["pivot"] = self.pivot
        dialect = next(iter(dialects)) if len(dialects) == 1 else ("mixed" if dialects else "space")
        return Trace(path=self.path, records=LazyRecords(columns, self.path, extras), prefix=prefix,
                     dialect=dialect, pixels=tuple(self.pixels), context=tuple(self.context), meta=meta)

    def _merged(self, plan) -> tuple[RecordColumns, dict]:
        """One column set of every planned group, in line order (the producer's own group alone,
        with nothing dropped, keeps the parser's arrays as they are)."""
        if len(plan) == 1 and not plan[0][0].drop:
            g = plan[0][0]
            name, ctx, line, ends, sk, vals = (g.column(k, final=True) for k in range(6))
            lengths = np.diff(np.r_[np.int64(0), ends]) if len(ends) else np.zeros(0, dtype=np.int64)
            return self._columns(name, ctx, line, lengths, sk, vals), dict(g.extras)
        parts = [self._part(g, how) for g, how in plan]
        name, ctx, line, lengths, sk = (np.concatenate([p[k] for p in parts]) for k in range(5))
        vals = np.concatenate([p[5] for p in parts])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths
        order = np.argsort(line, kind="stable")
        new_len = lengths[order]
        new_starts = np.concatenate([[0], np.cumsum(new_len)[:-1]]).astype(np.int64) if len(new_len) else new_len
        gather = np.repeat(starts[order] - new_starts, new_len) + np.arange(int(new_len.sum()), dtype=np.int64)
        where = np.empty(len(order), dtype=np.int64)
        where[order] = np.arange(len(order))
        extras, base = {}, 0
        for p in parts:
            for pos, rec in p[6].items():
                extras[int(where[base + pos])] = rec
            base += len(p[0])
        cols = self._columns(name[order], ctx[order], line[order], new_len, sk[order], vals[gather])
        return cols, extras

    def _part(self, g: Group, how):
        """A group's records as arrays (name, ctx, line, lengths, sk, vals, extras by position),
        without its dropped records, names qualified and loops extended as ``how`` says."""
        qual, loop = how
        name, ctx, line, ends, sk, vals = (g.column(k) for k in range(6))
        lengths = np.diff(np.r_[np.int64(0), ends]) if len(ends) else np.zeros(0, dtype=np.int64)
        keep = np.ones(len(name), dtype=bool)
        if g.drop:
            keep[list(g.drop)] = False
            vals = vals[np.repeat(keep, lengths)]
        pos_map = np.cumsum(keep) - 1
        extras = {}
        if qual is not None or loop:
            name, ctx = name.copy(), ctx.copy()
            names = {c: self._qualified(self.name_list[c], qual) for c in np.unique(name).tolist()}
            codes = {c: self._code(n) for c, n in names.items()}
            name = np.array([codes[c] for c in name.tolist()], dtype=np.int64)
            ctxs = {c: self._ctx(self.ctx_list[c][0], tuple(sorted(self.ctx_list[c][1] + loop)))
                    for c in np.unique(ctx).tolist()}
            ctx = np.array([ctxs[c] for c in ctx.tolist()], dtype=np.int64)
        for pos, rec in g.extras.items():
            if not keep[pos]:
                continue
            if qual is not None or loop:
                rec = rec._replace(name=self._qualified(rec.name, qual),
                                   index=rec.index._replace(loop=tuple(sorted(rec.index.loop + loop))))
            extras[int(pos_map[pos])] = rec
        return name[keep], ctx[keep], line[keep], lengths[keep], sk[keep], vals, extras

    @staticmethod
    def _qualified(name: str, qual: str | None) -> str:
        if qual is None:
            return name
        # joined with "_": the qualified name stays an identifier a tap spec can declare
        return f"{qual}{name}" if name.startswith("[") else f"{qual}_{name}"

    def _code(self, name: str) -> int:
        nid = self.name_ids.get(name)
        return self._new_name(name) if nid is None else nid

    def _columns(self, name, ctx, line, lengths, sk, vals) -> RecordColumns:
        """Read-only columns (views of the parser's own arrays where it can: it is done with them)."""
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        out = [name, ctx, line, vals, offsets, sk >> 3, sk & 7, occurrences(ctx, name, len(self.name_list))]
        for a in out:
            a.flags.writeable = False
        return RecordColumns(tuple(self.name_list), name, tuple(self.ctx_list), ctx, out[7], line, offsets, vals,
                             out[5], out[6])


def _root(prefix: str, real) -> str:
    """The shortest prefix in ``real`` that ``prefix`` is or extends at a "_" (linear in its length:
    a file of 100,000 made-up prefixes must not compare every pair)."""
    parts = prefix.split("_")
    for k in range(1, len(parts)):
        q = "_".join(parts[:k])
        if q in real:
            return q
    return prefix


def _family_member(suffix: str) -> tuple:
    """(qualifier, loop) of a prefix extending the producer's: ``SOURCE2`` is a loop index."""
    m = LOOP_FAMILY.match(suffix.upper())
    if m:
        return None, ((LOOP_FAMILY_KEYS[m.group(1)], int(m.group(2))),)
    return suffix, ()
