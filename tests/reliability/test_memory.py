"""Memory checks: a size that cannot fit is refused with "needs N GiB, M GiB available" at once.

Each case of issue 21 (reconstruct/orientations --symmetry C100000000 took the machine down or
ended in an allocator traceback; simulate --box 100000; ctf --box 100000 --plot) is refused
before anything large is allocated: the test would otherwise run for minutes or be killed.
"""

from __future__ import annotations

import re
import time

import pytest
from _badinput import assert_refused, half_maps, invoke, particles, snapshot

from cryoglass._allocator import NotEnoughMemoryError, check_memory


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


NEEDS = re.compile(r"needs [0-9.e+]+ GiB, [0-9.e+]+ GiB available")


def _refused_fast(args, folder, names):
    before = snapshot(folder)
    started = time.perf_counter()
    result = invoke(args)
    elapsed = time.perf_counter() - started
    err = assert_refused(result, folder, before, names=names)
    assert NEEDS.search(err), err
    assert elapsed < 10, f"refused only after {elapsed:.1f} s"  # i.e. before the work
    return err


def test_reconstruct_huge_symmetry_is_refused(work):
    star = particles(work)
    _refused_fast(
        ["reconstruct", star, "--out", "m.mrc", "--no-ctf", "--symmetry", "C100000000"],
        work,
        names="C100000000",
    )


def test_orientations_huge_symmetry_is_refused(work):
    star = particles(work)
    _refused_fast(["orientations", star, "--symmetry", "C100000000"], work, names="C100000000")


def test_simulate_huge_box_is_refused(work):
    h1, _ = half_maps(work)
    args = ["simulate", "--volume", h1, "--box", "100000", "--n-particles", "10", "--out", "sim"]
    _refused_fast(args, work, names="--box 100000")


def test_ctf_plot_huge_box_is_refused(work):
    args = ["ctf", "--defocus-u", "10000", "--box", "100000", "--plot", "ctf.png"]
    _refused_fast(args, work, names="--box 100000")


def test_check_memory_message():
    with pytest.raises(NotEnoughMemoryError, match="x: needs 1.5 GiB, 1 GiB available"):
        check_memory(1.5 * 2**30, what="x", available_bytes=2**30)
    assert check_memory(2**20, what="x", available_bytes=2**30) == 2**20
