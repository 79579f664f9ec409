"""`cryoglass simulate/reconstruct --workers N`: same files as the single-process commands."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

pytest.importorskip("dask.distributed")

from cryoglass.cli import reconstruct as reconstruct_cli  # noqa: E402
from cryoglass.cli import simulate as simulate_cli  # noqa: E402
from cryoglass.io import write_mrc  # noqa: E402
from cryoglass.simulate.phantom import gaussian_map  # noqa: E402


def _app(main) -> typer.Typer:
    app = typer.Typer()
    app.command()(main)
    return app


def _data(path):
    with mrcfile.open(path) as mrc:
        return np.array(mrc.data)


@pytest.mark.slow
def test_simulate_and_reconstruct_with_workers_match_single_process(tmp_path):
    runner = CliRunner()
    g = torch.Generator().manual_seed(1)
    volume = gaussian_map(
        (torch.rand(8, 3, generator=g) - 0.5) * 16,
        shape=(24, 24, 24),
        pixel_size_angstrom=2.0,
        sigma_angstrom=3.0,
    )
    write_mrc(tmp_path / "map.mrc", volume, pixel_size_angstrom=2.0)
    sim = _app(simulate_cli.main)
    common = [
        "--volume",
        str(tmp_path / "map.mrc"),
        "--n-particles",
        "600",
        "--snr",
        "1",
        "--seed",
        "4",
    ]
    one = runner.invoke(sim, [*common, "--out", str(tmp_path / "s1")])
    assert one.exit_code == 0, one.output
    two = runner.invoke(sim, [*common, "--out", str(tmp_path / "s2"), "--workers", "2", "--json"])
    assert two.exit_code == 0, two.output
    assert "dashboard" in two.output
    np.testing.assert_allclose(
        _data(tmp_path / "s2/particles.mrcs"), _data(tmp_path / "s1/particles.mrcs"), atol=1e-5
    )
    star1, star2 = (
        [
            line
            for line in (tmp_path / f"{d}/particles.star").read_text().splitlines()
            if "#" not in line
        ]
        for d in ("s1", "s2")
    )
    assert star1 == star2

    rec = _app(reconstruct_cli.main)
    star = str(tmp_path / "s1/particles.star")
    single = runner.invoke(rec, [star, "--out", str(tmp_path / "r1.mrc"), "--halves"])
    assert single.exit_code == 0, single.output
    args = [star, "--out", str(tmp_path / "r2.mrc"), "--halves", "--workers", "2"]
    args += ["--chunk-size", "130", "--work-dir", str(tmp_path / "work"), "--json"]
    dist = runner.invoke(rec, args)
    assert dist.exit_code == 0, dist.output
    summary = json.loads(dist.stdout[dist.stdout.index("{") :])
    assert summary["peak_rss_max_worker_mib"] > 50
    for name in ("r1.mrc", "r1_half1.mrc", "r1_half2.mrc"):
        a, b = _data(tmp_path / name), _data(tmp_path / name.replace("r1", "r2"))
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-4 * float(np.abs(a).max()))
    assert (tmp_path / "work/partial_sums.npz").is_file()
