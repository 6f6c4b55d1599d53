"""Build the C reference simulator (``simulator/c``) on first use, into a per-user cache.

The binary is named after the sha256 of its sources, the compiler and the flags, so it is rebuilt
exactly when one of them changes; compiling goes to a temporary name that is renamed into place,
so concurrent callers (parallel tests) never see a half-written binary. Each new build prunes
the cache to the KEEP most recently built binaries (a checkout that moves between commits would
otherwise leave one binary per source state, forever).

    >>> from nbtrace.run.cbuild import ensure_built
    >>> exe = ensure_built()          # pathlib.Path to an executable, tracing compiled in
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nbtrace.errors import ProducerError

BINARY_STEM = "nbref"
CHECKSUM_DIR = "sha256"
KEEP = 6  # builds kept in the cache: a few source states (branches) and both OpenMP variants
BASE_FLAGS = ("-O2", "-std=c99", "-DNBTRACE_ENABLE")
LINK_FLAGS = ("-lm",)
OPENMP_FLAG = "-fopenmp"
NO_COMPILER = ("no C compiler found (looked for $CC, cc, gcc)",
               "install gcc, or set NB_C_BIN to a prebuilt binary")
_OPENMP_PROBE = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"


@dataclass(frozen=True)
class Compiler:
    """A C compiler command (``argv`` prefix, e.g. ``("gcc",)`` or ``$CC`` split) and its identity."""

    argv: tuple[str, ...]
    identity: str


def cache_dir() -> Path:
    """$NBTRACE_CACHE, else $XDG_CACHE_HOME/nbtrace, else ~/.cache/nbtrace."""
    if os.environ.get("NBTRACE_CACHE"):
        return Path(os.environ["NBTRACE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nbtrace"


def source_dir() -> Path:
    """The shipped C sources: ``simulator/c`` of the installed package, else of this checkout.

    Uses the package spec rather than importing ``nbtrace.sim``, which would pay for torch.
    """
    spec = importlib.util.find_spec("nbtrace.sim")
    candidates = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "c" for p in spec.submodule_search_locations]
    candidates.append(Path(__file__).resolve().parents[2] / "simulator" / "c")
    for cand in candidates:
        if (cand / f"{BINARY_STEM}.c").is_file():
            return cand
    raise ProducerError("the C reference sources (simulator/c/nbref.c) are missing",
                        where=str(candidates[-1]), hint="reinstall nbtrace, or set NB_C_BIN")


def find_compiler() -> Compiler:
    """$CC (may carry flags), else cc, else gcc. Raises ProducerError when there is none, or
    when $CC is set but not runnable: the user chose that compiler, so falling back to another
    one silently would build something they did not ask for."""
    if os.environ.get("CC", "").strip():
        return _compiler_from_env(os.environ["CC"])
    for argv in (["cc"], ["gcc"]):
        if shutil.which(argv[0]):
            return Compiler(tuple(argv), _compiler_identity(argv))
    raise ProducerError(NO_COMPILER[0], hint=NO_COMPILER[1])


def _compiler_from_env(value: str) -> Compiler:
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise ProducerError(f"$CC={value!r} cannot be split into words ({exc})", where="$CC",
                            hint="fix the quoting in $CC, or unset it to use cc/gcc") from None
    if not shutil.which(argv[0]):
        raise ProducerError(f"$CC={value!r}: {argv[0]!r} is not an executable on PATH", where="$CC",
                            hint="point CC at an installed C compiler, or unset CC to use cc/gcc")
    return Compiler(tuple(argv), _compiler_identity(argv))


def _compiler_identity(argv: list[str]) -> str:
    try:
        out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=30)
        first = (out.stdout or out.stderr).splitlines()
        return first[0] if first else argv[0]
    except (OSError, subprocess.SubprocessError):
        return argv[0]


def _sources(src: Path) -> list[Path]:
    files = sorted(list(src.glob("*.c")) + list(src.glob("*.h")))
    if not any(f.suffix == ".c" for f in files):
        raise ProducerError("no C sources to build", where=str(src), hint="reinstall nbtrace")
    return files


def build_key(src: Path, compiler: Compiler, openmp: bool) -> str:
    """sha256 over every source file (name and bytes), the compiler identity and the flags."""
    h = hashlib.sha256()
    for f in _sources(src):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(repr((compiler.argv, compiler.identity, BASE_FLAGS, LINK_FLAGS, openmp)).encode())
    return h.hexdigest()


def binary_path(src: Path | None = None, openmp: bool = True) -> Path:
    """Where the binary for the current sources and compiler lives (built or not)."""
    src = src or source_dir()
    compiler = find_compiler()
    return cache_dir() / f"{BINARY_STEM}-{build_key(src, compiler, openmp)[:20]}{'' if openmp else '-serial'}"


def ensure_built(force: bool = False, openmp: bool = True, *, source: Path | None = None) -> Path:
    """Return the path of the C reference binary, compiling it first if the cache lacks it.

    force: rebuild even if cached.  openmp: add -fopenmp when a probe compile shows it works.
    source: a directory of C sources (default: the shipped ``simulator/c``), used by tests.
    Raises ProducerError (one line) when no compiler exists or compilation fails.
    """
    src = Path(source) if source is not None else source_dir()
    compiler = find_compiler()
    key = build_key(src, compiler, openmp)
    target = cache_dir() / f"{BINARY_STEM}-{key[:20]}{'' if openmp else '-serial'}"
    _own_folder(target.parent)
    if not force and target.exists() and verified(target):
        return target
    # absent, forced, or not the file this cache wrote (altered, swapped, someone else's): a
    # binary that fails the check is never executed; a fresh build replaces it
    try:
        flags = list(BASE_FLAGS)
        if openmp and _openmp_works(compiler, target.parent):
            flags.append(OPENMP_FLAG)
        _compile(compiler, src, flags, target)
        prune(target.parent, keep=KEEP)
    except OSError as exc:
        raise ProducerError(f"cannot write the build cache: {exc.strerror or exc}", where=str(target.parent),
                            hint="set NBTRACE_CACHE to a writable directory") from None
    return target


def prune(directory: Path, keep: int = KEEP) -> list[Path]:
    """Delete all but the ``keep`` newest builds (by build time) in ``directory``; returns what
    was deleted. A binary another process is running stays usable until it exits (POSIX)."""
    builds = [p for p in directory.glob(f"{BINARY_STEM}-*") if p.is_file() and not p.name.endswith(".tmp")]
    builds.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    removed = []
    for old in builds[keep:]:
        try:
            old.unlink()
            removed.append(old)
            checksum_path(old).unlink(missing_ok=True)
        except OSError:
            pass  # a concurrent prune got there first, or the file is not ours to delete
    return removed


def _own_folder(folder: Path) -> None:
    """Create the cache folder (private), or check that an existing one is this user's and
    writable by nobody else: a binary there is executed, so nobody else may put one there."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(folder)
        if st.st_uid != os.getuid():
            raise ProducerError("the C build cache folder belongs to another user", where=str(folder),
                                hint="set NBTRACE_CACHE to a folder of your own")
        if st.st_mode & 0o022:  # ours, but group/world-writable (a umask of 002): close it
            os.chmod(folder, stat.S_IMODE(st.st_mode) & ~0o022)
    except OSError as exc:
        raise ProducerError(f"cannot write the build cache: {exc.strerror or exc}", where=str(folder),
                            hint="set NBTRACE_CACHE to a writable directory") from None


def checksum_path(binary: Path) -> Path:
    """The sha256 this cache recorded for ``binary`` when it built it (in a subfolder: a
    listing or glob of the cache shows the binaries alone)."""
    return binary.parent / CHECKSUM_DIR / binary.name


def verified(binary: Path) -> bool:
    """True when ``binary`` is the file this cache built: a regular file (not a link) owned by
    this user, writable by nobody else, in a folder nobody else can write to, whose sha256
    matches the one recorded at build time. Anything else is never executed."""
    record = checksum_path(binary)
    try:
        st = os.lstat(binary)
        folders = [os.stat(binary.parent), os.stat(record.parent)]
        rec = os.lstat(record)
        recorded = record.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return False
    uid = os.getuid()

    def private(s) -> bool:
        return s.st_uid == uid and not s.st_mode & 0o022

    safe_file = stat.S_ISREG(st.st_mode) and private(st) and st.st_mode & 0o100
    safe_record = stat.S_ISREG(rec.st_mode) and private(rec)
    return bool(safe_file and safe_record and all(private(f) for f in folders)) and _sha256(binary) == recorded


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_checksum(binary: Path, digest: str) -> None:
    record = checksum_path(binary)
    _own_folder(record.parent)
    fd, tmp = tempfile.mkstemp(dir=record.parent, prefix=f".{binary.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(digest + "\n")
    os.replace(tmp, checksum_path(binary))


def _openmp_works(compiler: Compiler, workdir: Path) -> bool:
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".probe-") as tmp:
        probe = Path(tmp) / "probe.c"
        probe.write_text(_OPENMP_PROBE)
        try:
            res = subprocess.run([*compiler.argv, OPENMP_FLAG, str(probe), "-o", str(Path(tmp) / "probe")],
                                 capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return False
        return res.returncode == 0


def _compile(compiler: Compiler, src: Path, flags: list[str], target: Path) -> None:
    c_files = [str(f) for f in _sources(src) if f.suffix == ".c"]
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    cmd = [*compiler.argv, *flags, f"-I{src}", *c_files, "-o", str(tmp), *LINK_FLAGS]
    try:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ProducerError(f"could not run the C compiler: {exc}", where=compiler.argv[0],
                                hint="install gcc, or set NB_C_BIN to a prebuilt binary") from None
        if res.returncode != 0:
            raise ProducerError(f"compiling the C reference failed: {_first_error(res.stderr)}",
                                where=str(src), hint="see `nbtrace build-c --force`; or set NB_C_BIN")
        tmp.chmod(0o755)
        _write_checksum(target, _sha256(tmp))
        os.replace(tmp, target)  # atomic: a concurrent caller sees the old binary or the new one
    finally:
        if tmp.exists():
            tmp.unlink()


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if re.search(r"\berror:", ln):
            return ln
    return lines[0] if lines else "no compiler output"
