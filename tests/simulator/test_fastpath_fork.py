"""Eager frames rendered by forked worker processes (kernel._run_forked): the same image as one
process, bit for bit; a worker that fails leaves its tiles to the parent; and the fork is never
used where it cannot be (autograd, a recorder, intra-op threads, small frames)."""

from __future__ import annotations

import os

import pytest
import torch

from simhelp import SMALL
from nbtrace.sim import kernel
from nbtrace.sim.cli import parse_args
from nbtrace.sim.setup import build_setup

@pytest.fixture
def one_thread(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(kernel, "FORK_MIN_PIXELS", 1)
    yield
    torch.set_num_threads(before)


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


def test_no_fork_with_autograd_threads_or_small_frames(monkeypatch):
    monkeypatch.setattr(kernel, "FORK_MIN_PIXELS", 100)
    torch.set_num_threads(1)
    with torch.no_grad():
        assert kernel._fork_ready(2, 100) and not kernel._fork_ready(2, 99) and not kernel._fork_ready(1, 100)
    assert not kernel._fork_ready(2, 100)  # gradients wanted
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch.no_grad():
            assert not kernel._fork_ready(2, 100)
    finally:
        torch.set_num_threads(before)
