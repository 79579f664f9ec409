"""Benchmark: ``cryoglass serve`` under load, and upload → 3DFSC result for 128³ half maps.

Starts ``python -m cryoglass serve --workers 2`` on a free port, runs one warm-up FSC job (its
result page is the "result page" measured), submits 20 FSC jobs at once (concurrent uploads of
small half maps) and, until all 20 are finished, requests ``/``, ``/api/jobs`` and the result
page in turn, timing each answer (median and p95).  Then it times the upload of 128³ half maps
to a finished 3DFSC job (POST /api/jobs, polled every 0.1 s) against ``cryoglass 3dfsc`` run
directly on the same files (the whole command process: imports, reads, 3DFSC, figures, writes).

No peer program: the 3DFSC webserver is a remote service; the reference is our own CLI.

    python benchmarks/bench_serve.py [--jobs 20] [--small-box 48] [--box 128] [--no-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import torch

from cryoglass.io import write_mrc
from cryoglass.simulate import gaussian_map

PIXEL = 1.2


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def write_half_maps(folder: Path, box: int, *, seed: int) -> dict[str, Path]:
    """Noisy half maps of a random sum of Gaussians (box³, 1.2 Å pixels)."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(150, 3, generator=generator, dtype=torch.float64) * box * PIXEL / 8
    truth = gaussian_map(centers, shape=(box,) * 3, pixel_size_angstrom=PIXEL, sigma_angstrom=2.0)
    paths = {}
    for name in ("half1", "half2"):
        noise = torch.randn(truth.shape, generator=generator, dtype=torch.float64)
        noisy = (truth + 0.5 * float(truth.std()) * noise).float()
        paths[name] = write_mrc(folder / f"{name}_{box}.mrc", noisy, pixel_size_angstrom=PIXEL)
    return paths


def multipart(fields: dict[str, str], files: dict[str, Path]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = "cryoglass" + secrets.token_hex(8)
    parts = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(head.encode() + value.encode() + b"\r\n")
    for name, path in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + path.read_bytes() + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def submit(base: str, kind: str, maps: dict[str, Path]) -> str:
    body, content_type = multipart({"kind": kind}, maps)
    request = urllib.request.Request(
        base + "/api/jobs", data=body, headers={"Content-Type": content_type}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.load(answer)["id"]


def get(base: str, path: str) -> bytes:
    with urllib.request.urlopen(base + path, timeout=120) as answer:
        return answer.read()


def job(base: str, job_id: str) -> dict:
    return json.loads(get(base, f"/api/jobs/{job_id}"))


def wait_done(base: str, job_id: str, *, poll_s: float = 0.1, timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = job(base, job_id)
        if record["status"] in ("done", "failed"):
            return record
        time.sleep(poll_s)
    raise RuntimeError(f"job {job_id} not finished after {timeout_s} s")


def start_server(data_dir: Path, workers: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "cryoglass", "serve", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--workers", str(workers)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            get(base, "/api/jobs")
            return server, base
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("cryoglass serve exited at start-up") from None
            time.sleep(0.1)
    raise RuntimeError("cryoglass serve did not answer in 60 s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_test(base: str, maps: dict[str, Path], n_jobs: int) -> None:
    warm = submit(base, "fsc", maps)  # also spawns torch in a worker before the clock starts
    assert wait_done(base, warm)["status"] == "done"
    pages = {"/": "/", "/api/jobs": "/api/jobs", "result page": f"/jobs/{warm}"}
    ids: list[str] = []
    threads = [
        threading.Thread(target=lambda: ids.append(submit(base, "fsc", maps)))
        for _ in range(n_jobs)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uploaded = time.perf_counter() - start
    latencies: dict[str, list[float]] = {name: [] for name in pages}
    load_during = loadavg()
    statuses: dict[str, str] = {}
    while True:
        for name, path in pages.items():
            t0 = time.perf_counter()
            body = get(base, path)
            latencies[name].append(time.perf_counter() - t0)
            if name == "/api/jobs":
                statuses = {j["id"]: j["status"] for j in json.loads(body) if j["id"] in ids}
        if len(statuses) == n_jobs and all(s in ("done", "failed") for s in statuses.values()):
            break
        time.sleep(0.05)
    total = time.perf_counter() - start
    done = sum(s == "done" for s in statuses.values())
    print(
        f"load: {n_jobs} fsc jobs uploaded at once in {uploaded:.2f} s, all finished in "
        f"{total:.1f} s on 2 workers: {done} done, {n_jobs - done} failed, "
        f"{n_jobs - len(statuses)} lost"
    )
    for name, values in latencies.items():
        print(
            f"page latency under load, {name:<11}: median {1e3 * statistics.median(values):6.1f} "
            f"ms, p95 {1e3 * percentile(values, 0.95):6.1f} ms  (n = {len(values)})"
        )
    print(f"loadavg during the load test: {load_during}")


def three_d_fsc_latency(base: str, maps: dict[str, Path], *, cli: bool, out: Path) -> None:
    start = time.perf_counter()
    job_id = submit(base, "3dfsc", maps)
    uploaded = time.perf_counter() - start
    record = wait_done(base, job_id)
    total = time.perf_counter() - start
    assert record["status"] == "done", record["error"]
    in_worker = record["finished_at"] - record["started_at"]
    print(
        f"3dfsc {maps['half1'].name}+{maps['half2'].name}: upload -> result {total:.2f} s "
        f"(upload + checks {uploaded:.2f} s, in the worker {in_worker:.2f} s), "
        f"sphericity {record['result']['sphericity']:.3f}"
    )
    if cli:
        command = [sys.executable, "-m", "cryoglass", "3dfsc", str(maps["half1"])]
        command += [str(maps["half2"]), "--out", str(out), "--json"]
        t0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        direct = time.perf_counter() - t0
        print(
            f"cryoglass 3dfsc CLI on the same files (whole process): {direct:.2f} s; "
            f"serve / CLI = {total / direct:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--small-box", type=int, default=48)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--no-cli", action="store_true", help="skip the direct CLI timing")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}, torch {torch.__version__}; loadavg {loadavg()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        folder = Path(tmp)
        small = write_half_maps(folder, args.small_box, seed=1)
        large = write_half_maps(folder, args.box, seed=2)
        server, base = start_server(folder / "data", workers=2)
        try:
            print(f"server: {base}, 2 workers; fsc jobs on {args.small_box}^3 half maps")
            load_test(base, small, args.jobs)
            three_d_fsc_latency(base, large, cli=not args.no_cli, out=folder / "cli")
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"loadavg after: {loadavg()}")


if __name__ == "__main__":
    main()
