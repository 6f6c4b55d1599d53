"""Isolate every bug of a port in one run: replay the reference's inputs of each divergent stage.

First-divergence names one root cause; every tap downstream of it is "inherited", so a second
and third bug hide until the first is fixed. Here the port runs once as it is (the baseline),
then once per divergent tap T (taps with the same inputs share a run) with the reference's
values of T's direct inputs (the spec's ``after:`` edges) replayed at the traced pixels
(:mod:`nbtrace.tap` replay). If T still diverges, the bug is in T's own stage; if it agrees, T
only inherited. The port is any command whose taps go through ``nbtrace.tap``: it receives
``NBTRACE_PIXELS``, ``NBTRACE_OUT``, ``NBTRACE_REPLAY`` and ``NBTRACE_REPLAY_TAPS`` in its
environment (and the same values through ``{pixels}``, ``{out}``, ``{replay}``, ``{replay_taps}``
in the command template).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbtrace.errors import ProducerError, UsageError

PLACEHOLDERS = ("pixels", "out", "replay", "replay_taps")


@dataclass(frozen=True)
class StageResult:
    """One divergent tap (label: tap[loop]) after its inputs were replayed.

    status: "bug" (still diverges with the reference's inputs, or its inputs all agree already),
    "inherited" (agrees once its inputs are the reference's), "bug-no-inputs" (diverges and none
    of its inputs is tapped on both sides: the divergence starts in this stage or in an untapped
    one before it), "inconclusive" (the replay did not reach the tap, or it was not printed).
    replayed: the inputs that diverged in the baseline and were replaced by the reference's.
    """

    tap: str
    label: str
    baseline_status: str
    status: str
    replayed: tuple[str, ...]
    not_replayed: tuple[str, ...]
    factor: float | None
    explanation: str
    run: int | None  # index into IsolateResult.runs, None when no replay run was needed

    @property
    def is_bug(self) -> bool:
        return self.status in ("bug", "bug-no-inputs")

    def to_json(self) -> dict:
        return {"tap": self.tap, "label": self.label, "baseline_status": self.baseline_status,
                "status": self.status, "replayed": list(self.replayed), "not_replayed": list(self.not_replayed),
                "factor": _num(self.factor), "explanation": self.explanation, "run": self.run}


@dataclass(frozen=True)
class IsolateResult:
    reference: str
    command: str
    pixels: tuple[tuple[int, int], ...]
    baseline: object  # DiffResult of the unreplayed port
    stages: tuple[StageResult, ...]
    runs: tuple[dict, ...] = field(default=())

    @property
    def bugs(self) -> tuple[StageResult, ...]:
        return tuple(s for s in self.stages if s.is_bug)

    def bug_groups(self) -> list[list[StageResult]]:
        """Bugs that are one defect: taps replayed from the same inputs and off by the same factor
        (F_latt_a, F_latt_b, F_latt_c from one shared lattice function), or with the same
        explanation (Fbeam_m and Sbeam_m both off by the same half pixel)."""
        groups: dict[tuple, list[StageResult]] = {}
        for s in self.bugs:
            what = round(s.factor, 12) if s.factor is not None else s.explanation
            key = (s.replayed, what) if s.replayed or s.factor is None else (s.label,)
            groups.setdefault(key, []).append(s)
        return list(groups.values())

    @property
    def verdict(self) -> str:
        return "agree" if bool(self.baseline) else "diverge"

    def exit_code(self) -> int:
        return 0 if self.verdict == "agree" else 1

    def to_json(self) -> dict:
        b = self.baseline
        return {
            "verdict": self.verdict,
            "bugs": [s.to_json() for s in self.bugs],
            "bug_groups": [[s.label for s in g] for g in self.bug_groups()],
            "stages": [s.to_json() for s in self.stages],
            "first_divergence": b.root_cause.to_json() if b.root_cause else None,
            "baseline_headline": b.headline,
            "reference": self.reference, "command": self.command,
            "pixels": [list(p) for p in self.pixels], "runs": list(self.runs),
        }


def _num(x):
    import math

    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def isolate(reference, command, *, spec=None, env=None, timeout: float = 600.0, workdir=None,
            progress=None, prefix: str | None = None, simulator: bool = False) -> IsolateResult:
    """Run ``command`` (a template string or a list of words) as the baseline and once per group
    of divergent taps with their inputs replayed; returns the stages found.

    reference: path of the reference trace (its traced pixels are the ones traced and replayed).
    spec: a TapSpec, a YAML path or a shipped spec name; default: the shipped spec that fits.
    env: extra environment for the port. workdir: where the port's traces go (default: a
    temporary folder, removed afterwards). progress: called with one-line messages.
    simulator: ``command`` is the built-in simulator's (:func:`simulator_command`): the pixels go
    as ``-trace_pixel`` flags and the trace comes on stdout; only NBTRACE_REPLAY* are set.
    """
    from nbtrace.engine.diff import diff_traces, resolve_spec
    from nbtrace.engine.parse import read_trace
    from nbtrace.engine.spec import conditions_of, spec_for

    say = progress or (lambda _m: None)
    ref_path = os.path.abspath(os.fspath(reference))
    ref = read_trace(ref_path, prefix=prefix)
    pixels = tuple(dict.fromkeys(ref.pixels))
    if not pixels:
        raise UsageError("the reference trace traces no pixel (no 'TRACE_CONFIG: tracing pixel' header)", ref_path,
                         "trace one or more pixels on the reference side (-trace_pixel S F)")
    words = _template(command)
    if simulator:
        words += [w for s, f in pixels for w in ("-trace_pixel", str(s), str(f))]
    tmp = tempfile.TemporaryDirectory(prefix="nbtrace-isolate-") if workdir is None else None
    work = Path(tmp.name if tmp else workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        runner = _Runner(words, env or {}, pixels, ref_path, work, timeout, say, pixels_env=not simulator)
        port = runner.run(())
        tap_spec = resolve_spec(spec) if spec is not None else spec_for(ref, port)
        if tap_spec is None:
            raise UsageError("no tap spec fits these traces, so the pipeline's inputs of each tap are unknown",
                             hint="give --spec: scaffold one with `nbtrace taps init REF.log -o my.yaml` and list "
                                  "each tap's inputs under after:")
        base = diff_traces(ref, port, tap_spec)
        if base.matched == 0:
            raise UsageError("the port's trace shares no tap with the reference", runner.last_out,
                             "tap the reference's names (nbtrace taps show), or give --spec with aliases")
        dag = tap_spec.specialize(conditions_of(tap_spec, ref, port))
        stages = _stages(base, dag, ref, port, runner, say)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return IsolateResult(ref_path, shlex.join(words), pixels, base, tuple(stages), tuple(runner.log))


def simulator_command(nb_args, inject=()) -> list[str]:
    """The built-in PyTorch simulator as the port: nanoBragg arguments, fault injections (names
    checked now: UsageError before any run)."""
    import sys

    from nbtrace.sim.injections import validate

    validate(list(inject))
    return [sys.executable, "-m", "nbtrace.sim", *[str(a) for a in nb_args],
            *[w for name in inject for w in ("--inject", name)]]


def _template(command) -> list[str]:
    if isinstance(command, (list, tuple)):
        words = [str(w) for w in command]
    else:
        try:
            words = shlex.split(str(command))
        except ValueError as exc:
            raise UsageError(f"--cmd {command!r} cannot be split into words ({exc})", "--cmd",
                             "quote it as a shell would") from None
    if not words:
        raise UsageError("the port command is empty", "--cmd", 'e.g. --cmd "python my_port.py --size 64"')
    for w in words:
        try:
            w.format(**{k: "" for k in PLACEHOLDERS})
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(f"--cmd word {w!r} has an unknown placeholder ({exc})", "--cmd",
                             "placeholders: {pixels} {out} {replay} {replay_taps}; write {{ and }} for braces")
    return words


class _Runner:
    """Runs the port: with ``NBTRACE_*`` set, in the caller's working directory."""

    def __init__(self, words, env, pixels, ref_path, work, timeout, say, pixels_env=True):
        self.words, self.env, self.ref_path, self.work = words, env, ref_path, work
        self.pixels_env = pixels_env
        self.timeout, self.say = timeout, say
        self.pixels_text = ";".join(f"{s} {f}" for s, f in pixels)
        self.log: list[dict] = []
        self.traces: list = []
        self.last_out = None

    def run(self, replay: tuple[str, ...]):
        from nbtrace.engine.parse import parse_text, read_trace
        from nbtrace.errors import TraceError

        n = len(self.log)
        out = self.work / f"run{n}.log"
        values = {"pixels": self.pixels_text, "out": str(out), "replay": self.ref_path if replay else "",
                  "replay_taps": ",".join(replay)}
        argv = [w.format(**values) for w in self.words]
        env = dict(os.environ)
        for k in ("NBTRACE_PIXELS", "NBTRACE_ROI", "NBTRACE_REPLAY", "NBTRACE_REPLAY_TAPS", "NBTRACE_OUT"):
            env.pop(k, None)
        env.update(self.env)
        if self.pixels_env:
            env.update(NBTRACE_PIXELS=self.pixels_text, NBTRACE_OUT=str(out))
        if replay:
            env.update(NBTRACE_REPLAY=self.ref_path, NBTRACE_REPLAY_TAPS=",".join(replay))
        self.say(f"isolate: run {n}" + (f": replaying {', '.join(replay)}" if replay else ": baseline (no replay)"))
        start = time.perf_counter()
        try:
            proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, timeout=self.timeout)
        except FileNotFoundError:
            raise ProducerError(f"cannot start the port: no such program {argv[0]!r}", "--cmd",
                                "check the command (it runs without a shell, in this directory)") from None
        except subprocess.TimeoutExpired:
            raise ProducerError(f"the port ran longer than {self.timeout:g} s", "--cmd", "raise --timeout") from None
        except OSError as exc:
            raise ProducerError(f"cannot start the port ({exc.strerror or exc})", argv[0]) from None
        wall = time.perf_counter() - start
        self.log.append({"replay": list(replay), "argv": argv, "returncode": proc.returncode, "wall_s": round(wall, 3)})
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            last = err[-1] if err else "(no message on stderr)"
            raise ProducerError(f"the port exited with code {proc.returncode}"
                                + (f" while replaying {', '.join(replay)}" if replay else "") + f": {last}",
                                "--cmd", "run the command by hand with the same NBTRACE_* variables to see why")
        self.last_out = str(out)
        if out.is_file() and out.stat().st_size:
            self.traces.append(read_trace(out))
            return self.traces[-1]
        text = proc.stdout.decode("utf-8", "replace")
        try:
            self.traces.append(parse_text(text, path=f"<stdout of {argv[0]}>"))
            return self.traces[-1]
        except TraceError:
            raise ProducerError("the port printed no taps (neither NBTRACE_OUT nor stdout holds a trace)", "--cmd",
                                "does it call nbtrace.tap.tap(...) on its arrays? see docs/instrument-a-port.md") from None


def _printed_names(trace, spec, side: str) -> dict[str, str]:
    """canonical tap name -> the name this side prints (the first, for pixel records)."""
    out: dict[str, str] = {}
    for n in trace.names():
        c = spec.canonical(n, side) or n
        out.setdefault(c, n)
    return out


def _stages(base, dag, ref, port, runner, say) -> list[StageResult]:
    from nbtrace.engine.diff import diff_traces

    divergent = [f for f in base.findings if f.status in ("introduced", "inherited")]
    if not divergent:
        return []
    ref_names, port_names = _printed_names(ref, dag, "a"), _printed_names(port, dag, "b")
    bad = {f.verdict.tap for f in divergent}
    plans = []
    for f in divergent:
        v = f.verdict
        inputs = dag.get(v.tap).after if v.tap in dag else ()
        both = tuple(i for i in inputs if i in ref_names and i in port_names)
        only_ref = tuple(i for i in inputs if i in ref_names and i not in port_names)
        # an input that already agrees needs no replay: only the divergent ones are replaced
        plans.append((f, tuple(port_names[i] for i in both if i in bad), only_ref, bool(both)))
    groups: dict[tuple[str, ...], list] = {}
    for plan in plans:
        if plan[1]:
            groups.setdefault(tuple(sorted(plan[1])), []).append(plan)
    say(f"isolate: {len(divergent)} divergent tap(s); {len(groups)} replay run(s)")
    replayed_diff: dict[tuple[str, ...], tuple[int, object]] = {}
    for key in groups:
        trace = runner.run(key)
        replayed_diff[key] = (len(runner.log) - 1, diff_traces(ref, trace, dag))
    out = []
    for f, replay, only_ref, tapped in plans:
        v = f.verdict
        if not replay:
            # no input of it diverges: it diverges on its own (or, untapped, its inputs are unknown)
            status = ("bug" if tapped else "bug-no-inputs") if f.status == "introduced" else "inconclusive"
            out.append(StageResult(v.tap, v.label, f.status, status, (), only_ref, v.factor,
                                   _explain(v), None))
            continue
        run, result = replayed_diff[tuple(sorted(replay))]
        again = next((g for g in result.findings if g.verdict.label == v.label), None)
        unreplayed = _not_replayed(result, replay, dag)
        if unreplayed:
            out.append(StageResult(v.tap, v.label, f.status, "inconclusive", replay, only_ref, None,
                                   f"the port kept its own {', '.join(unreplayed)} (the replay was not applied: "
                                   "it cannot replay that tap, or ignores what tap() returns)", run))
        elif again is None or again.verdict.kind == "missing":
            out.append(StageResult(v.tap, v.label, f.status, "inconclusive", replay, only_ref, None,
                                   "the replayed run did not print this tap", run))
        elif again.status in ("introduced", "inherited") and (deaf := _unmoved(v, f, base, replay, dag, port,
                                                                               runner.traces[run])):
            out.append(StageResult(v.tap, v.label, f.status, "inconclusive", replay, only_ref, None,
                                   f"replaying {', '.join(deaf)} (which differed) left it bit-for-bit unchanged: the "
                                   "port does not use the values tap() returns (write x = tap(...)), or it is not "
                                   "computed from them (check the spec's after:)", run))
        elif again.status in ("introduced", "inherited"):
            out.append(StageResult(v.tap, v.label, f.status, "bug", replay, only_ref, again.verdict.factor,
                                   _explain(again.verdict), run))
        else:
            out.append(StageResult(v.tap, v.label, f.status, "inherited", replay, only_ref, None,
                                   "agrees once its inputs are the reference's", run))
    return out


def _unmoved(v, f, base, replay, dag, port, trace) -> list[str]:
    """The replayed inputs that diverged in the baseline, when the tap's printed values are
    exactly the baseline's although those inputs changed: the replay never reached the tap."""
    canon = {dag.canonical(n, "b") or n: n for n in replay}
    moved = [canon[g.verdict.tap] for g in base.findings
             if g.verdict.tap in canon and not g.verdict.loop and g.status in ("introduced", "inherited")]
    if not moved:
        return []
    return moved if _values_of(port, v, dag) == _values_of(trace, v, dag) else []


def _values_of(trace, v, dag) -> list:
    loop_keys = set(v.loop)
    return [(r.index.pixel, r.index.loop, r.index.occurrence, r.values) for r in trace.records
            if r.index.pixel is not None and (dag.canonical(r.name, "b") or r.name) == v.tap
            and {k for k, _ in r.index.loop} == loop_keys]


def _not_replayed(result, replay, dag) -> list[str]:
    """Replayed taps whose printed values still diverge: the port ignored the replay."""
    canon = {dag.canonical(n, "b") or n for n in replay}
    return sorted({f.verdict.tap for f in result.findings
                   if f.verdict.tap in canon and not f.verdict.loop and f.status in ("introduced", "inherited")})


def _explain(v) -> str:
    head = v.message.split("\n", 1)[0]
    prefix = f"{v.label}: "
    return head[len(prefix):] if head.startswith(prefix) else head
