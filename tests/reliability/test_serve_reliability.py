"""serve: a malformed token is a 401 (not a 500); job logs show no server paths."""

from __future__ import annotations

import warnings

import pytest

from cryoglass.serve import create_app
from cryoglass.serve.jobs import JobStore, run_job

with warnings.catch_warnings():  # starlette warns at import that httpx2 is preferred
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    "where",
    [
        {"params": {"token": "jätte-hemlig-ü"}},
        {"headers": {"Authorization": "Bearer ü€".encode()}},
        {"headers": {"Cookie": "cryoglass_token=ünï".encode()}},
    ],
)
def test_non_ascii_token_is_401(tmp_path, where):
    client = TestClient(create_app(tmp_path, workers=1, token="secret"))  # no lifespan: no workers
    response = client.get("/api/jobs", **where)
    assert response.status_code == 401
    assert client.get("/api/jobs", params={"token": "secret"}).status_code == 200


def test_job_log_shows_no_server_paths(tmp_path):
    store = JobStore(tmp_path)
    job_id = "a" * 12
    store.create(job_id, "fsc", {})
    (store.job_dir(job_id) / "inputs").mkdir(parents=True)  # no half maps: the job fails
    assert run_job(job_id, str(tmp_path)) == "failed"
    job = store.get(job_id)
    assert "$ cryoglass fsc inputs/half1.mrc inputs/half2.mrc" in job["log"]
    assert str(tmp_path) not in job["log"] and str(tmp_path) not in job["error"]
