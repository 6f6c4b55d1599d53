"""Typed errors of the library. The CLI turns them into one line and exit code 2."""

from __future__ import annotations


class NbtraceError(Exception):
    """Base class. ``where`` is ``file:line[:col]`` or a path; ``hint`` says how to fix it."""

    def __init__(self, what: str, where: str | None = None, hint: str | None = None):
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        head = f"{self.where}: {self.what}" if self.where else self.what
        return f"{head} (hint: {self.hint})" if self.hint else head


class TraceError(NbtraceError):
    """A trace file cannot be read or parsed."""


class SpecError(NbtraceError):
    """A tap spec (YAML) is malformed or inconsistent."""


class UsageError(NbtraceError):
    """Bad arguments or options."""


class ProducerError(NbtraceError):
    """A producer (C build, simulator, user's command) failed or could not be built."""


class ImageError(NbtraceError):
    """An image file cannot be read or has the wrong shape."""
