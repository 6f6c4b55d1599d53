"""Progress on stderr: step lines off a terminal, nothing at all when only a spinner was wanted."""

import io
import threading

from nbtrace.report.progress import Steps


def test_lines_when_not_a_terminal():
    buf = io.StringIO()
    with Steps(file=buf, label_prefix="hunt:") as steps:
        assert not steps.live
        steps("hunt: [1/4] rendering")
        steps("capture c: done")
    assert buf.getvalue() == "hunt: [1/4] rendering\ncapture c: done\n"


def test_spinner_only_prints_nothing_off_a_terminal():
    buf = io.StringIO()
    with Steps(file=buf, keep=False) as steps:
        steps("diff: reading A and B")
    assert buf.getvalue() == ""


def test_live_spinner_keeps_every_line_and_is_thread_safe():
    buf = io.StringIO()
    with Steps(live=True, file=buf, label_prefix="hunt:") as steps:
        threads = [threading.Thread(target=steps, args=(f"hunt: step {i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    text = buf.getvalue()
    assert all(f"hunt: step {i}" in text for i in range(8))
