"""Explorer figures of cryoglass serve, the access token and the serve command's defaults."""

from __future__ import annotations

import io
import warnings

import matplotlib.image
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from cryoglass.fourier import fft2_centered, rfft2_centered
from cryoglass.serve import create_app
from cryoglass.serve.explorers import _full_plane

with warnings.catch_warnings():  # starlette warns at import that httpx2 is preferred
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _image(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return matplotlib.image.imread(io.BytesIO(response.content), format="png")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # no `with`: the lifespan (worker processes) is not needed for the explorers
    return TestClient(create_app(tmp_path_factory.mktemp("serve"), workers=1))


@pytest.mark.parametrize("n", [8, 9])
def test_full_plane_is_friedel_completion(n, generator):
    x = torch.randn(2, n, n, generator=generator, dtype=torch.float64)
    full = _full_plane(rfft2_centered(x))
    torch.testing.assert_close(full, fft2_centered(x))


def test_ctf_explorer_pngs_follow_the_sliders(client):
    base = "/api/explore/ctf/image.png?defocus_angstrom="
    near, far = _image(client.get(base + "10000")), _image(client.get(base + "25000"))
    assert near.shape == far.shape and near.ndim == 3
    assert np.abs(near - far).mean() > 0.01  # more defocus, more Thon rings
    profile = _image(client.get("/api/explore/ctf/profile.png?bfactor_a2=100&cs_mm=0"))
    assert profile.shape[1] > profile.shape[0]
    bad = client.get("/api/explore/ctf/profile.png?amplitude_contrast=2")
    assert bad.status_code == 422


def test_blur_explorer(client):
    plain = _image(client.get("/api/explore/blur.png"))
    blurred = _image(client.get("/api/explore/blur.png?bfactor_a2=800&lowpass_angstrom=10"))
    assert plain.shape == blurred.shape
    assert np.abs(plain - blurred).mean() > 0.005
    projection = _image(client.get("/api/explore/blur.png?view=projection&axis=x"))
    assert np.abs(plain - projection).mean() > 0.005
    assert client.get("/api/explore/blur.png?lowpass_angstrom=2").status_code == 422
    assert client.get("/api/explore/blur.png?axis=w").status_code == 422
    assert client.get("/api/explore/blur.png?index=64").status_code == 422


def test_fourier_slice_explorer(client):
    top = _image(client.get("/api/explore/slice.png?tilt_deg=0"))
    side = _image(client.get("/api/explore/slice.png?tilt_deg=90&rot_deg=30"))
    assert np.abs(top - side).mean() > 0.01


def test_explorer_pages(client):
    for path, control in (
        ("/explore/ctf", 'name="defocus_angstrom"'),
        ("/explore/blur", 'name="bfactor_a2"'),
        ("/explore/slice", 'name="tilt_deg"'),
    ):
        page = client.get(path)
        assert page.status_code == 200 and control in page.text
        assert "/static/explorer.js" in page.text
    assert "ctf/profile.png" in client.get("/openapi.json").json()["paths"].__repr__()
    assert client.get("/static/explorer.js").status_code == 200


def test_token_gate(tmp_path):
    gated = TestClient(create_app(tmp_path, workers=1, token="s3cret"))
    assert gated.get("/api/jobs").status_code == 401
    assert gated.get("/api/jobs", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert gated.get("/api/jobs", headers={"Authorization": "Bearer s3cret"}).json() == []
    first = gated.get("/?token=s3cret")
    assert first.status_code == 200 and "cryoglass_token" in first.headers["set-cookie"]
    assert gated.get("/api/jobs").status_code == 200  # the cookie now carries the token


def test_serve_command_binds_loopback_by_default(tmp_path, monkeypatch):
    import uvicorn

    from cryoglass.cli import serve

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    app = typer.Typer()
    app.command()(serve.main)
    runner = CliRunner()
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "--port", "8999"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8999
    assert "http://127.0.0.1:8999/" in result.stdout and "token" not in result.stdout
    # any other interface gets an access token, printed in the URL
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "--host", "0.0.0.0"])
    assert result.exit_code == 0 and calls[-1]["host"] == "0.0.0.0"
    assert "?token=" in result.stdout
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "--workers", "0"])
    assert result.exit_code == 2 and "--workers must be >= 1" in result.stderr
