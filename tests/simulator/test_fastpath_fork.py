"""Eager frames rendered by forked worker processes (kernel._run_forked): the same image as one
process, bit for bit; a worker that fails leaves its tiles to the parent; and the fork is never
used where it cannot be (autograd, a recorder, intra-op threads, small frames).

The process-wide checks (torch's thread count, other Python threads) are pinned here through
kernel._process_can_fork, so the result never depends on what earlier tests left running."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from simhelp import SMALL
from nbtrace.sim import kernel
from nbtrace.sim.cli import parse_args
from nbtrace.sim.setup import build_setup


@pytest.fixture
def torch_threads():
    """Set torch's intra-op thread count for one test and restore it afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.fixture
def one_thread(monkeypatch, torch_threads):
    torch_threads(1)
    monkeypatch.setattr(kernel, "FORK_MIN_PIXELS", 1)
    monkeypatch.setattr(kernel, "_process_can_fork", lambda: True)


@pytest.mark.parametrize("extra", ["", "-roi 3 29 2 30", "-oversample 2 -mosaic 0.5 -mosaic_domains 3 -phisteps 2 -osc 0.2",
                                   "-dtype float32"])
def test_forked_frame_equals_one_process(one_thread, extra):
    setup = build_setup(parse_args(SMALL + extra.split()))
    with torch.no_grad():
        assert kernel._fork_ready(2, 32 * 32)
        serial = kernel.render_frame(setup, workers=1, chunk=64)
        seen = []
        forked = kernel.render_frame(setup, workers=2, chunk=64, progress=lambda d, t: seen.append((d, t)))
    assert torch.equal(serial, forked)
    assert seen and max(d for d, _ in seen) == seen[0][1]  # progress reaches the ROI's pixel count


def test_a_failing_worker_leaves_its_tiles_to_the_parent(one_thread):
    parent = os.getpid()
    done = []

    def one(tile):
        if os.getpid() != parent and tile % 2:
            raise RuntimeError("worker dies")  # the odd tiles' worker fails in the child only
        done.append(tile)  # in the parent, this list is what it computed itself
        return tile

    kernel._run_forked(one, list(range(6)), 2, None, 6)
    assert sorted(done) == [1, 3, 5]


def test_no_fork_with_autograd_or_small_frames(monkeypatch):
    monkeypatch.setattr(kernel, "FORK_MIN_PIXELS", 100)
    monkeypatch.setattr(kernel, "_process_can_fork", lambda: True)
    with torch.no_grad():
        assert kernel._fork_ready(2, 100) and not kernel._fork_ready(2, 99) and not kernel._fork_ready(1, 100)
    with torch.enable_grad():
        assert not kernel._fork_ready(2, 100)  # gradients wanted
    monkeypatch.setattr(kernel, "_process_can_fork", lambda: False)
    with torch.no_grad():
        assert not kernel._fork_ready(2, 100)  # another thread or an intra-op pool


@pytest.mark.parametrize("torch_n, python_n, ok", [(1, 1, True), (2, 1, False), (1, 2, False), (4, 3, False)])
def test_fork_needs_one_torch_thread_and_one_python_thread(torch_n, python_n, ok):
    assert kernel._process_can_fork(lambda: torch_n, lambda: python_n) is ok


def test_the_real_process_checks_see_a_live_thread_and_torch_threads(torch_threads):
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not kernel._process_can_fork()  # this thread is alive whatever else is
    finally:
        stop.set()
        t.join()
    torch_threads(2)
    assert not kernel._process_can_fork()
