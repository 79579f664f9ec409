"""cryoglass serve results pages: the commands' own reports and figures, every output downloadable.

Also the 3D kinds through the API on tiny simulated data (reconstruct → postprocess, refine3d,
class2d, vae train → vae analyze), and that no served page loads a script, style or image from
elsewhere.
"""

from __future__ import annotations

import re
import time
import warnings
from html.parser import HTMLParser

import pytest
from _serve_helpers import OVER, simulated_project

from cryoglass.serve import create_app
from cryoglass.serve.jobs import out_files
from cryoglass.serve.routes_pages import job_outputs

with warnings.catch_warnings():  # starlette warns at import that httpx2 is preferred
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


#: The attribute by which each tag makes the browser fetch something.
_FETCHING = {"script": "src", "img": "src", "iframe": "src", "link": "href", "source": "src",
             "embed": "src", "object": "data", "video": "src", "audio": "src"}  # fmt: skip


class _Fetched(HTMLParser):
    """URLs a page makes the browser fetch: scripts, styles, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = _FETCHING.get(tag)
        if name and attrs.get(name):
            self.urls.append(attrs[name])
        self._in_style = tag == "style"
        if attrs.get("style"):
            self.handle_data(attrs["style"])

    def handle_data(self, data):
        self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", data)
        self.urls += re.findall(r"@import\s+['\"]([^'\"]+)", data)


def external_fetches(html: str) -> list[str]:
    """The URLs of ``html`` that point at another site (http(s):// or //host)."""
    parser = _Fetched()
    parser.feed(html)
    return [u for u in parser.urls if re.match(r"^\s*(https?:)?//", u, re.I)]


def test_external_fetches_finds_cdn_assets():
    page = (
        '<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui-bundle.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/x.css"><img src="/api/x.png">'
        "<style>@import 'http://a/b.css'; body{background:url(/static/ok.png)}</style>"
    )
    assert external_fetches(page) == [
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui-bundle.js",
        "//fonts.example/x.css",
        "http://a/b.css",
    ]


def test_no_page_loads_anything_from_elsewhere(tmp_path):
    client = TestClient(create_app(project_dir=tmp_path, workers=1))  # no lifespan: no workers
    assert client.get("/redoc").status_code == 404
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert "/api/project/jobs" in docs.text and "swagger-ui" not in docs.text.lower()
    for page in ("/", "/docs", "/explore/ctf", "/explore/blur", "/explore/slice"):
        html = client.get(page).text
        assert external_fetches(html) == [], page
        parser = _Fetched()
        parser.feed(html)
        for url in parser.urls:  # the page's own scripts and styles load nothing either
            if url.startswith("/static/"):
                text = client.get(url).text
                assert not re.search(
                    r"""(import|fetch|src|href|url)\W+['"(]?(https?:)?//""", text
                ), url


def test_out_files_lists_subfolders_safely(tmp_path):
    out = tmp_path / "Class2D" / "job004"
    (out / "overlays").mkdir(parents=True)
    for name in ("classes.png", "report.html", "overlays/mic_0001_picks.png", ".hidden"):
        (out / name).write_text("x")
    (out / "overlays" / "bad name.png").write_text("x")
    (tmp_path / "secret.txt").write_text("x")
    (out / "link.txt").symlink_to(tmp_path / "secret.txt")
    (out / "linked").symlink_to(tmp_path)
    files = out_files(out)
    assert files == ["classes.png", "overlays/mic_0001_picks.png", "report.html"]
    shown = job_outputs(files)
    assert shown["report"] == "report.html"
    assert shown["figures"] == ["classes.png", "overlays/mic_0001_picks.png"]


def _wait(client, job_id: str, timeout_s: float = 300.0) -> dict:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in OVER:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s} s")


def _run(client, kind: str, **params) -> dict:
    answer = client.post("/api/project/jobs", json={"kind": kind, "params": params})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _shown_figures(html: str) -> set[str]:
    return set(re.findall(r'<img src="/api/jobs/[0-9a-f]{12}/files/([^"]+)"', html))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return simulated_project(tmp_path_factory.mktemp("results"), n_particles=150)


def test_3d_kinds_and_their_results_pages(project):
    with TestClient(create_app(project_dir=project, workers=2)) as client:
        recon = _run(client, "reconstruct", particles="Sim/particles.star", halves=True)
        post = _run(client, "postprocess", half1=f"job:{recon['id']}/reconstruction_half1.mrc",
                    half2=f"job:{recon['id']}/reconstruction_half2.mrc", bfactor="-50")  # fmt: skip
        refine = _run(client, "refine3d", particles="Sim/particles.star", reference="Sim/truth.mrc",
                      ini_high=12, max_iterations=2, ctf=True)  # fmt: skip
        class2d = _run(client, "class2d", particles="Sim/particles.star", classes=3, iterations=2)
        vae = _run(client, "vae", particles="Sim/particles.star", zdim=2, epochs=1)
        analyze = _run(client, "vae_analyze", training=f"job:{vae['id']}", kmeans=3)
        jobs = {name: _wait(client, answer["id"]) for name, answer in [
            ("reconstruct", recon), ("postprocess", post), ("refine3d", refine),
            ("class2d", class2d), ("vae", vae), ("vae_analyze", analyze)]}  # fmt: skip
        for name, job in jobs.items():
            assert job["status"] == "done", (name, job["error"], job["log"][-2000:])
            folder = project / job["out_dir"]
            assert (folder / "RELION_JOB_EXIT_SUCCESS").is_file()
            assert set(job["files"]) == set(out_files(folder)), name
        assert jobs["postprocess"]["depends"] == [recon["id"]]
        assert jobs["vae_analyze"]["depends"] == [vae["id"]]
        assert jobs["vae_analyze"]["out_dir"].startswith("VaeAnalyze/job")
        assert not list((project / jobs["vae"]["out_dir"]).glob("analyze.*"))  # its own folder
        latent = jobs["vae_analyze"]["result"]
        assert latent["kmeans"] == 3 and sum(latent["counts"]) == 150 and latent["epoch"] == 1
        post_result = jobs["postprocess"]["result"]
        assert 4.0 <= post_result["resolution_angstrom"] < 40.0 and post_result["bfactor"] == -50
        assert jobs["refine3d"]["result"]["iterations"] == 3  # 2 and the final one, as RELION
        pages = {name: client.get(f"/jobs/{job['id']}").text for name, job in jobs.items()}
        expected = {  # each command's own figures, on its page
            "reconstruct": {"reconstruction_fsc.png"},
            "postprocess": {"postprocess_fsc.png", "postprocess_guinier.png"},
            "refine3d": {"run_fsc.png", "orientations.png", "convergence.png"},
            "class2d": {"classes.png", "convergence.png"},  # the class gallery
            "vae": {"learning_curve.png"},
            "vae_analyze": {"pca.png", "umap.png", "kmeans_volumes.png", "learning_curve.png"},
        }
        for name, figures in expected.items():
            assert figures <= _shown_figures(pages[name]), (name, _shown_figures(pages[name]))
        for name in ("refine3d", "class2d", "vae_analyze"):  # report.html, shown in a frame
            assert 'id="report" src="/api/jobs/' in pages[name]
            report = client.get(f"/api/jobs/{jobs[name]['id']}/files/report.html")
            assert report.status_code == 200 and report.headers["content-type"].startswith(
                "text/html"
            )
            assert "script-src" not in report.headers["content-security-policy"]
            assert "default-src 'none'" in report.headers["content-security-policy"]
            for src in re.findall(r"<img src='([^']+)'", report.text):  # its figures resolve
                assert src in jobs[name]["files"], src
                png = client.get(f"/api/jobs/{jobs[name]['id']}/files/{src}")
                assert png.content[:4] == b"\x89PNG"
        for name, job in jobs.items():  # every output downloadable, nothing else
            for file in job["files"]:
                assert file in pages[name]
            assert external_fetches(pages[name]) == []
            for bad in ("../../.cryoglass/jobs.sqlite", "..%2F..%2Fpotential.mrc", "/etc/passwd",
                        "RELION_JOB_EXIT_SUCCESS/..", "nothere.png"):  # fmt: skip
                assert client.get(f"/api/jobs/{job['id']}/files/{bad}").status_code == 404, bad
