"""`cryoglass nma` and `cryoglass nma-dataset` end to end (local typer apps until registered)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cryoglass.cli.nma import main as nma_main
from cryoglass.cli.nma_dataset import main as dataset_main


def _app(main, name):
    app = typer.Typer()
    app.command(name)(main)
    app.command("unused")(lambda: None)
    return app


def test_nma_json_gives_prodys_eigenvalues(shared_data, tmp_path):
    ref = np.loadtxt(shared_data / "nma_reference" / "anm1ubi_evalues.dat")[:, 1]
    model = shared_data / "models" / "pdb1ubi_ca.pdb"
    result = CliRunner().invoke(
        _app(nma_main, "nma"), ["nma", str(model), "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    values = np.array(json.loads(result.stdout)["eigenvalues"])
    assert values.shape == (20,)
    np.testing.assert_allclose(values, ref[6:26], atol=1e-4, rtol=0)
    with np.load(tmp_path / "modes.npz") as saved:
        np.testing.assert_allclose(saved["eigenvalues"], values)
        assert saved["eigenvectors"].shape == (228, 20)
    assert (tmp_path / "report.html").is_file()
    frames = (tmp_path / "mode_1.pdb").read_text().count("MODEL")
    assert frames == 20


def test_nma_gnm_and_errors(shared_data, tmp_path):
    model = shared_data / "models" / "pdb1ubi_ca.pdb"
    app = _app(nma_main, "nma")
    ok = CliRunner().invoke(app, ["nma", str(model), "--gnm", "--out", str(tmp_path), "--json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["eigenvalues"][0] == pytest.approx(1.36924, abs=1e-4)
    bad = CliRunner().invoke(
        app, ["nma", str(model), "--cutoff-angstrom", "3", "--out", str(tmp_path / "bad")]
    )
    assert bad.exit_code == 2 and "disconnected" in bad.output and "gap" in bad.output


def test_nma_on_a_model_does_not_import_torch(shared_data, tmp_path):
    code = (
        "import sys, typer\n"
        "from cryoglass.cli.nma import main\n"
        "app = typer.Typer(); app.command('nma')(main); app.command('x')(lambda: None)\n"
        f"sys.argv = ['c', 'nma', r'{shared_data / 'models' / 'pdb1ubi_ca.pdb'}', "
        f"'--out', r'{tmp_path}']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


def test_nma_dataset_star_column_read_by_cryoglass(shared_data, tmp_path):
    from cryoglass.io import read_particles

    model = shared_data / "models" / "pdb1ubi.pdb"
    result = CliRunner().invoke(
        _app(dataset_main, "nma-dataset"),
        [
            "nma-dataset",
            str(model),
            "--n-particles",
            "6",
            "--box",
            "48",
            "--bins",
            "4",
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    particles = read_particles(tmp_path / "particles.star")
    amplitudes = particles.particles_table["cryoglassModeAmplitude1"].to_numpy()
    assert amplitudes.shape == (6,) and np.unique(amplitudes).size <= 4
    assert (tmp_path / "particles.mrcs").is_file()


@pytest.mark.relion
def test_relion_keeps_the_amplitude_column(shared_data, tmp_path):
    from conftest import run_relion

    model = shared_data / "models" / "pdb1ubi.pdb"
    CliRunner().invoke(
        _app(dataset_main, "nma-dataset"),
        ["nma-dataset", str(model), "--n-particles", "4", "--box", "48", "--out", str(tmp_path)],
    )
    run_relion(
        [
            "relion_star_handler",
            "--i",
            "particles.star",
            "--o",
            "kept.star",
            "--select",
            "rlnRandomSubset",
            "--minval",
            "0",
            "--maxval",
            "3",
        ],
        cwd=tmp_path,
    )
    assert "_cryoglassModeAmplitude1" in (tmp_path / "kept.star").read_text()
