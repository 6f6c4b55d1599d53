"""Which program a capture runs, and running it: in a fresh folder, in its own session (so
the producer and everything it starts can be killed together), with a timeout. A helper that
left the session (setsid, a double fork) is still found by the run token in its environment."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from nbtrace.errors import ProducerError, UsageError


@dataclass(frozen=True)
class Producer:
    side: str
    kind: str
    command: tuple[str, ...]
    executable: str


@dataclass(frozen=True)
class Run:
    returncode: int
    wall_s: float
    stdout_text: str
    stderr_text: str
    timed_out: bool
    env_note: dict


def select_producer(side: str, c_bin: str | None, port_cmd: str | None) -> Producer:
    if c_bin is not None and not c_bin.strip():
        raise UsageError("--c-bin is empty", hint="give the path of your C build, or leave --c-bin out")
    if side == "c":
        user = c_bin or os.environ.get("NB_C_BIN") or None
        if user:
            exe = resolve_executable(user, "--c-bin / NB_C_BIN")
            return Producer("user-c", "user C build", (exe,), str(Path(exe).resolve()))
        from nbtrace.run.cbuild import ensure_built  # builds on first use

        exe = str(ensure_built())
        return Producer("c", "nbtrace C reference", (exe,), exe)
    if port_cmd is not None:  # "" is a mistake, not a request for the default simulator
        try:
            words = shlex.split(port_cmd)
        except ValueError as exc:
            raise UsageError(f"--port-cmd {port_cmd!r} cannot be split into words ({exc})", "--port-cmd",
                             "fix the quoting, e.g. --port-cmd 'python -m myport'") from None
        if not words:
            raise UsageError("--port-cmd is empty",
                             hint="give the command that runs your port, e.g. 'python -m myport'")
        exe = resolve_executable(words[0], "--port-cmd")
        return Producer("port-cmd", "user port command", (exe, *words[1:]), str(Path(exe).resolve()))
    return Producer("py", "nbtrace PyTorch simulator", (sys.executable, "-m", "nbtrace.sim"), sys.executable)


def resolve_executable(name: str, what: str) -> str:
    found = shutil.which(name) if os.sep not in name else (name if os.access(name, os.X_OK) else None)
    if found is None:
        where = name if os.sep in name else None
        if where and not Path(name).exists():
            raise ProducerError(f"{what} points at a file that does not exist", where=name,
                                hint="check the path of your build")
        raise ProducerError(f"{what}: {name!r} is not an executable program", where=where,
                            hint="give the path of an executable (chmod +x) or a command on PATH")
    # absolute, but not resolved: a virtualenv's python is a symlink that finds its
    # environment (pyvenv.cfg) through the path it was started by
    return os.path.abspath(found)


def child_env() -> tuple[dict, dict]:
    env = dict(os.environ)
    note = {}
    # The C program's φ == 0 carry-over and the shared interpolation buffer make results
    # depend on the thread count (physics.md §9.1 items 16, 33); one thread is the
    # reproducible reference unless the caller decided otherwise.
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = "1"
    note["OMP_NUM_THREADS"] = env["OMP_NUM_THREADS"]
    return env, note


#: environment variable whose value marks every process one producer run started
RUN_TOKEN = "NBTRACE_RUN_TOKEN"


def start(argv: list[str], work: Path, out, err, env: dict, producer: Producer, stdin=subprocess.DEVNULL):
    """Popen in ``work``, as the leader of a new session (so of a new process group)."""
    try:
        return subprocess.Popen(argv, cwd=work, stdout=out, stderr=err, stdin=stdin, env=env,
                                start_new_session=True)
    except OSError as exc:
        raise ProducerError(f"cannot start {producer.kind}: {exc.strerror}", where=argv[0],
                            hint="check that the program exists and is executable") from None


def run_process(argv: list[str], work: Path, timeout: float, producer: Producer, extra_env=None) -> Run:
    env, note = child_env()
    if extra_env:  # e.g. NBTRACE_REPLAY for a replayed port run; recorded in the provenance note
        env.update(extra_env)
        note.update(extra_env)
    token = env[RUN_TOKEN] = uuid.uuid4().hex  # inherited by whatever the producer starts
    out_path, err_path = work / "stdout.txt", work / "stderr.txt"
    t0 = time.perf_counter()
    timed_out = False
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = start(argv, work, out, err, env, producer)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # also on Ctrl-C: nothing the producer started may outlive the capture
            kill_group(proc)
            kill_token_holders(token)
    wall = time.perf_counter() - t0
    return Run(proc.returncode, wall, read_text(out_path), read_text(err_path), timed_out, note)


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the producer's process group: the producer if it still runs, and whatever it left
    behind (OpenMP helpers, a shell wrapper's child, a daemonised helper that kept the group),
    but nothing else. Called after every run, finished or not."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is empty: nothing left to stop
    proc.wait()


def kill_token_holders(token: str) -> int:
    """Kill this user's processes whose environment carries ``token``: what a producer started and
    detached from its process group (a daemon: setsid, double fork), which the group kill misses.
    Reads /proc (Linux); elsewhere the group kill is all there is. Returns how many were killed."""
    needle = f"{RUN_TOKEN}={token}".encode()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    killed, me = 0, os.getpid()
    for pid in pids:
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                found = needle in fh.read().split(b"\0")
        except OSError:  # gone, or another user's (unreadable): not ours to stop
            continue
        if found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def raise_on_failure(run: Run, producer: Producer, argv: list[str]) -> None:
    if run.timed_out:
        raise ProducerError(f"{producer.kind} did not finish within {run.wall_s:.0f} s and was killed",
                            where=producer.executable,
                            hint="use a smaller detector / -roi, or raise --timeout")
    if run.returncode != 0:
        last = last_line(run.stderr_text) or last_line(run.stdout_text) or "(it printed nothing)"
        how = (f"killed by signal {-run.returncode}" if run.returncode < 0
               else f"exited with code {run.returncode}")
        raise ProducerError(f"{producer.kind} {how}: {last[:300]}", where=producer.executable,
                            hint=f"re-run by hand to see everything: {short(argv, 200)}")


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def short(argv: Sequence[str], limit: int = 160) -> str:
    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."
