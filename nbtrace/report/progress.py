"""Progress on stderr: on a terminal, a spinner with the current step and its elapsed time
(rich.progress) above which every step stays printed; elsewhere the step lines alone, so logs
and pipes get plain text and the report on stdout is never mixed with it."""

from __future__ import annotations

import sys
import threading


class Steps:
    """``with Steps() as steps: steps.say("rendering ...")``. Thread-safe: the hunt reports from
    the two producer threads at once."""

    def __init__(self, live: bool | None = None, file=None, keep: bool = True, label_prefix: str = ""):
        from rich.console import Console

        self._con = Console(file=file if file is not None else sys.stderr, markup=False, highlight=False,
                            emoji=False, soft_wrap=True)
        self.live = self._con.is_terminal if live is None else live
        self.keep = keep  # False: messages only label the spinner, nothing stays printed
        # only messages with this prefix name the current step (a producer's "done" line does not)
        self.label_prefix = label_prefix
        self._progress = None
        self._task = None
        self._lock = threading.Lock()

    def __enter__(self) -> "Steps":
        if self.live:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                      console=self._con, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def say(self, message: str) -> None:
        with self._lock:
            try:
                if self._progress is not None:
                    if self.keep:
                        self._progress.console.print(message)
                    if message.startswith(self.label_prefix):
                        width = max(20, self._con.width - 16)
                        short = message if len(message) <= width else message[:width - 1] + "…"
                        self._progress.update(self._task, description=short)
                elif self.keep:
                    self._con.print(message)
            except OSError:  # stderr is a closed pipe: nothing left to tell
                pass

    def __call__(self, message: str) -> None:
        self.say(message)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
