"""Helpers of the serve tests: a simulated project folder and a served subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import torch
from typer.testing import CliRunner

from cryoglass.cli.main import app as cli_app
from cryoglass.io import write_mrc
from cryoglass.simulate import gaussian_map

OVER = ("done", "failed", "cancelled")


def simulated_project(root, *, n_particles: int = 120, box: int = 32, seed: int = 3):
    """A project folder with ``Sim/particles.star`` (poses and CTF) and ``Sim/truth.mrc``."""
    root.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    volume = gaussian_map((torch.rand(14, 3, generator=g) - 0.5) * 0.5 * box, shape=(box,) * 3,
                          pixel_size_angstrom=2.0, sigma_angstrom=2.5)  # fmt: skip
    write_mrc(root / "potential.mrc", (volume / volume.max()).float(), pixel_size_angstrom=2.0)
    args = ["simulate", "--volume", str(root / "potential.mrc"), "--n-particles",
            str(n_particles), "--snr", "0.5", "--defocus-min", "8000", "--defocus-max", "15000",
            "--seed", str(seed), "--out", str(root / "Sim")]  # fmt: skip
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    return root


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python -m cryoglass serve --project-dir DIR`` in a subprocess."""

    def __init__(self, project, log, workers: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "cryoglass", "serve", "--project-dir", str(project),
                   "--port", str(self.port), "--workers", str(workers)]  # fmt: skip
        self.log = log
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/api/jobs")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("server did not start") from None
                time.sleep(0.1)

    def get(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=10) as answer:
            return json.load(answer)

    def post(self, path: str, body: dict):
        request = urllib.request.Request(
            self.base + path, json.dumps(body).encode(), {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    def wait(self, job_id: str, until=OVER, timeout_s: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.get(f"/api/jobs/{job_id}")
            if job["status"] in until:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
