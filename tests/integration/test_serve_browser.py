"""cryoglass serve in a real browser: headless Debian chromium driven by Selenium.

The server runs as ``python -m cryoglass serve`` in a subprocess; the browser uploads half maps
through the home page's form, waits on the job page (which reloads itself as the job runs) and
reads the sphericity it shows, then moves a CTF-explorer slider and checks the plots change.

Needs ``chromium`` and ``chromium-driver`` (Debian packages) and the ``selenium`` package.
Locally the tests skip when one is missing; in CI (``CRYOGLASS_REQUIRE_BROWSER=1``) they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from cryoglass.io import write_mrc
from cryoglass.simulate import gaussian_map

REQUIRE_BROWSER = os.environ.get("CRYOGLASS_REQUIRE_BROWSER", "") == "1"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1600",
)
PIXEL, BOX = 1.5, 40


def _find(name: str, debian_path: str) -> str | None:
    return debian_path if Path(debian_path).is_file() else shutil.which(name)


def _browser_parts() -> tuple[str, str]:
    """(chromium, chromedriver): skip when absent, fail in CI (CRYOGLASS_REQUIRE_BROWSER=1)."""
    chromium = _find("chromium", "/usr/bin/chromium")
    driver = _find("chromedriver", "/usr/bin/chromedriver")
    missing = [
        what
        for what, ok in (
            ("chromium (apt-get install chromium)", chromium),
            ("chromedriver (apt-get install chromium-driver)", driver),
            ("selenium (pip install selenium)", importlib.util.find_spec("selenium")),
        )
        if not ok
    ]
    if missing:
        message = "browser test needs " + ", ".join(missing)
        if REQUIRE_BROWSER:
            pytest.fail(message + " — required in CI (CRYOGLASS_REQUIRE_BROWSER=1)")
        pytest.skip(message)
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of ``python -m cryoglass serve`` on a free port (one worker), stopped after."""
    _browser_parts()  # skip before starting anything
    folder = tmp_path_factory.mktemp("serve")
    port = _free_port()
    log = (folder / "server.log").open("w")
    command = [sys.executable, "-m", "cryoglass", "serve", "--port", str(port)]
    command += ["--data-dir", str(folder / "data"), "--workers", "1"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60.0
        while True:
            try:
                _get_json(base + "/api/jobs")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "server did not start:\n" + (folder / "server.log").read_text()
                    ) from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless chromium with a fresh profile."""
    chromium, driver_path = _browser_parts()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def half_maps(tmp_path_factory) -> dict[str, Path]:
    """Noisy half maps (and the noise-free full map) of a random sum of Gaussians, 40³."""
    folder = tmp_path_factory.mktemp("maps")
    generator = torch.Generator().manual_seed(11)
    centers = torch.randn(80, 3, generator=generator, dtype=torch.float64) * 6.0
    truth = gaussian_map(centers, shape=(BOX,) * 3, pixel_size_angstrom=PIXEL, sigma_angstrom=1.5)
    paths = {"full": write_mrc(folder / "full.mrc", truth.float(), pixel_size_angstrom=PIXEL)}
    for name in ("half1", "half2"):
        noise = torch.randn(truth.shape, generator=generator, dtype=torch.float64)
        noisy = (truth + 0.5 * float(truth.std()) * noise).float()
        paths[name] = write_mrc(folder / f"{name}.mrc", noisy, pixel_size_angstrom=PIXEL)
    return paths


def _wait(driver, condition, *, timeout_s: float, what: str):
    """Poll ``condition(driver)`` (tolerating page reloads) until it is truthy."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, timeout_s, poll_frequency=0.2, ignored_exceptions=[WebDriverException]
    )
    return wait.until(condition, message=f"timed out after {timeout_s} s waiting for {what}")


def test_submit_3dfsc_job_and_read_the_sphericity(server, browser, half_maps, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server + "/")
    assert "Submit a job" in browser.find_element(By.TAG_NAME, "h1").text
    Select(browser.find_element(By.ID, "kind")).select_by_value("3dfsc")
    cone = browser.find_element(By.NAME, "cone_deg")
    assert cone.is_displayed() and cone.is_enabled()  # submit.js shows the 3dfsc options
    assert not browser.find_element(By.NAME, "bfactor").is_displayed()
    for name in ("half1", "half2", "full"):
        browser.find_element(By.NAME, name).send_keys(str(half_maps[name]))
    cone.clear()
    cone.send_keys("25")
    browser.find_element(By.CSS_SELECTOR, "#submit button[type=submit]").click()

    rejected = _wait(  # the job page, or the home page with the reason for a rejection
        browser,
        lambda d: (
            "/jobs/" in d.current_url
            or d.execute_script(
                "const e = document.getElementById('error'); return e && e.textContent;"
            )
        ),
        timeout_s=30,
        what="the job page",
    )
    assert rejected is True, f"upload rejected: {rejected}"
    job_id = browser.current_url.rstrip("/").rsplit("/", 1)[1]
    status = _wait(  # job.js reloads the page on each status change: queued → running → done
        browser,
        lambda d: d.execute_script(
            "const s = document.getElementById('status');"
            "return s && ['done', 'failed'].includes(s.textContent) ? s.textContent : null;"
        ),
        timeout_s=120,
        what=f"job {job_id} to finish",
    )
    job = _get_json(f"{server}/api/jobs/{job_id}")
    assert status == "done", job["error"]
    assert job["status"] == "done" and job["kind"] == "3dfsc"
    assert job["params"]["cone_deg"] == 25.0 and job["params"]["shape"] == [BOX] * 3
    assert job["params"]["uploads"] == {n: f"{n}.mrc" for n in ("half1", "half2", "full")}

    shown = browser.find_element(By.CSS_SELECTOR, '#headline b[data-key="sphericity"]').text
    sphericity = job["result"]["sphericity"]
    assert 0.0 < sphericity <= 1.0
    assert shown == f"{sphericity:.4g}"
    assert abs(float(shown) - sphericity) <= 5e-4 * sphericity
    row = browser.find_element(By.CSS_SELECTOR, '#summary td[data-key="sphericity"]').text
    assert row == shown
    # the command's figures are displayed (decoded by the browser), every output downloadable
    figures = browser.find_elements(By.CSS_SELECTOR, "figure img")
    assert {f.get_attribute("alt") for f in figures} >= {"histogram.png", "fsc.png"}
    for figure in figures:
        width = browser.execute_script("return arguments[0].naturalWidth;", figure)
        assert width > 100, figure.get_attribute("alt")
    links = {a.text for a in browser.find_elements(By.CSS_SELECTOR, "#files a")}
    assert links == set(job["files"]) and "chimerax.cxc" in links
    screenshot = tmp_path / "job_page.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _plot_state(driver) -> dict | None:
    """src and rendered pixels of the two CTF plots once both are loaded, else None."""
    from selenium.webdriver.common.by import By

    state = {}
    for name in ("ctf-profile", "ctf-image"):
        img = driver.find_element(By.ID, name)
        loaded = driver.execute_script(
            "const i = arguments[0];"
            "return i.complete && i.naturalWidth > 0 && i.dataset.loading === '0' "
            "&& !i.dataset.pending;",
            img,
        )
        if not loaded:
            return None
        state[name] = (img.get_attribute("src"), img.screenshot_as_png)
    return state


def test_ctf_explorer_slider_redraws_the_plots(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server + "/explore/ctf")
    before = _wait(browser, _plot_state, timeout_s=60, what="the first CTF plots")
    slider = browser.find_element(By.ID, "defocus_angstrom")
    assert slider.get_attribute("value") == "15000"

    slider.send_keys(Keys.END)  # keyboard on a range input: jumps to the maximum, fires input
    assert slider.get_attribute("value") == "50000"
    output = browser.find_element(By.CSS_SELECTOR, 'output[for="defocus_angstrom"]')
    assert output.text == "50000"
    after = _wait(
        browser,
        lambda d: (s := _plot_state(d)) and s["ctf-profile"][0] != before["ctf-profile"][0] and s,
        timeout_s=60,
        what="the CTF plots at 50000 Å defocus",
    )
    for name in ("ctf-profile", "ctf-image"):
        src = after[name][0]
        assert "defocus_angstrom=50000" in src and "defocus_angstrom=15000" in before[name][0]
        assert after[name][1] != before[name][1], f"{name}: the rendered plot did not change"
        with (
            urllib.request.urlopen(src, timeout=30) as new,
            urllib.request.urlopen(before[name][0], timeout=30) as old,
        ):
            assert new.read() != old.read()

    # setting a value from script + an input event (as a drag does) redraws as well
    browser.execute_script(
        "const s = document.getElementById('bfactor_a2'); s.value = 200;"
        "s.dispatchEvent(new Event('input', {bubbles: true}));"
    )
    damped = _wait(
        browser,
        lambda d: (s := _plot_state(d)) and "bfactor_a2=200" in s["ctf-profile"][0] and s,
        timeout_s=60,
        what="the CTF plots with B = 200 Å²",
    )
    assert damped["ctf-profile"][1] != after["ctf-profile"][1]
    screenshot = tmp_path / "ctf_explorer.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ project jobs in the browser


@pytest.fixture(scope="module")
def project_server(tmp_path_factory):
    """(base URL, project folder) of ``cryoglass serve --project-dir`` with simulated particles."""
    _browser_parts()
    from _serve_helpers import Server, simulated_project

    project = simulated_project(tmp_path_factory.mktemp("browser-project"), n_particles=150)
    log = (project.parent / "server.log").open("w")
    server = Server(project, log, workers=1)
    try:
        yield server.base, project
    finally:
        server.stop()
        log.close()


def _run_in_form(driver, base: str, kind: str, values: dict[str, str]) -> str:
    """Fill the home page's project form for ``kind`` and submit it; return the job id.

    A value ``("choose", path)`` must be offered among the inputs (the project's files and
    the outputs of earlier jobs) before it is typed.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(base + "/")
    option = f'#project-kind option[value="{kind}"]'
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, option), timeout_s=30,
          what="the project kinds")  # fmt: skip
    Select(driver.find_element(By.ID, "project-kind")).select_by_value(kind)
    for name, value in values.items():
        if isinstance(value, tuple):  # chosen from the offered inputs
            value = value[1]
            _wait(
                driver,
                lambda d, v=value: d.execute_script(
                    "return Array.from(document.querySelectorAll('#project-files option'))"
                    ".some(o => o.value === arguments[0]);",
                    v,
                ),
                timeout_s=30,
                what=f"{value} among the offered inputs",
            )
        field = driver.find_element(By.CSS_SELECTOR, f'#project-params input[name="{name}"]')
        field.clear()
        field.send_keys(value)
    driver.find_element(By.CSS_SELECTOR, "#project-submit button[type=submit]").click()
    shown = _wait(
        driver,
        lambda d: (
            "/jobs/" in d.current_url
            or d.execute_script(
                "const e = document.getElementById('project-error');"
                "return e && !e.hidden && e.textContent;"
            )
        ),  # fmt: skip
        timeout_s=30,
        what=f"the {kind} job page",
    )
    assert shown is True, f"{kind} rejected: {shown}"
    return driver.current_url.rstrip("/").rsplit("/", 1)[1]


def _finished(driver, job_id: str, timeout_s: float = 180) -> str:
    return _wait(  # job.js follows the job and reloads the page with the results
        driver,
        lambda d: d.execute_script(
            "const s = document.getElementById('status');"
            "return s && !document.getElementById('progress') "
            "&& ['done', 'failed', 'cancelled'].includes(s.textContent) ? s.textContent : null;"
        ),
        timeout_s=timeout_s,
        what=f"job {job_id} to finish",
    )


def _figures_shown(driver) -> set[str]:
    """Figures on the page the browser decoded (naturalWidth > 0), by file name."""
    from selenium.webdriver.common.by import By

    shown = set()
    for img in driver.find_elements(By.CSS_SELECTOR, "#figures img"):
        driver.execute_script("arguments[0].scrollIntoView();", img)
        _wait(driver, lambda d, i=img: d.execute_script("return arguments[0].complete;", i),
              timeout_s=20, what="a figure to load")  # fmt: skip
        if driver.execute_script("return arguments[0].naturalWidth;", img) > 0:
            shown.add(img.get_attribute("alt"))
    return shown


@pytest.mark.slow
def test_chained_preprocessing_in_the_browser(project_server, browser):
    """ctffind → pick → extract → class2d through the form, each input chosen from the last job."""
    from selenium.webdriver.common.by import By
    from typer.testing import CliRunner

    from cryoglass.cli.main import app as cli_app

    base, project = project_server
    args = ["simulate-movies", "--volume", str(project / "potential.mrc"), "--n-micrographs", "2",
            "--size", "384", "--no-movies", "--crowding", "0.25", "--frames", "5",
            "--dose-per-frame", "8", "--defocus-min", "10000", "--defocus-max", "25000",
            "--out", str(project / "Import"), "--seed", "2"]  # fmt: skip
    made = CliRunner().invoke(cli_app, args)
    assert made.exit_code == 0, made.output
    steps = [
        ("ctffind", {"micrographs": ("choose", "Import/micrographs.star"), "tile_size": "128",
                     "max_res": "6"}, {"mic_0001_ctf.png", "mic_0002_ctf.png"}),
        ("pick", {"micrographs": ("choose", "{ctffind}/micrographs_ctf.star"), "diameter": "40"},
         {"fom_histogram.png", "overlays/mic_0001_picks.png", "overlays/mic_0002_picks.png"}),
        ("extract", {"micrographs": ("choose", "{ctffind}/micrographs_ctf.star"),
                     "coords": ("choose", "{pick}"), "box": "32"}, set()),
        ("class2d", {"particles": ("choose", "{extract}/particles.star"), "classes": "3",
                     "iterations": "2"}, {"classes.png", "convergence.png"}),
    ]  # fmt: skip
    folders: dict[str, str] = {}
    for kind, values, figures in steps:
        values = {
            k: (v[0], v[1].format(**folders)) if isinstance(v, tuple) else v
            for k, v in values.items()
        }
        job_id = _run_in_form(browser, base, kind, values)
        assert _finished(browser, job_id) == "done", browser.find_element(By.ID, "error").text
        job = _get_json(f"{base}/api/jobs/{job_id}")
        folders[kind] = job["out_dir"]
        assert (project / job["out_dir"] / "RELION_JOB_EXIT_SUCCESS").is_file()
        assert figures <= _figures_shown(browser), (kind, _figures_shown(browser))
        links = {a.text for a in browser.find_elements(By.CSS_SELECTOR, "#files a")}
        assert links == set(job["files"])
    report = browser.find_element(By.ID, "report")  # class2d's own report.html, in a frame
    browser.switch_to.frame(report)
    try:
        gallery = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "img"),
                        timeout_s=20, what="the report's figures")  # fmt: skip
        assert any(
            browser.execute_script("return arguments[0].naturalWidth;", img) > 0 for img in gallery
        )
    finally:
        browser.switch_to.default_content()
    particles = _get_json(f"{base}/api/jobs/{job_id}")["params"]["argv"][1]
    assert particles == f"{folders['extract']}/particles.star"


def test_cancel_from_the_browser(project_server, browser):
    from selenium.webdriver.common.by import By

    base, project = project_server
    job_id = _run_in_form(browser, base, "class2d", {"particles": ("choose", "Sim/particles.star"),
                          "classes": "3", "iterations": "400"})  # fmt: skip
    _wait(
        browser,
        lambda d: "iteration" in d.find_element(By.ID, "message").text,
        timeout_s=90,
        what="class2d to iterate",
    )
    assert browser.find_element(By.ID, "status").text == "running"
    browser.find_element(By.ID, "cancel").click()
    pressed = time.monotonic()
    assert _finished(browser, job_id, timeout_s=10) == "cancelled"
    elapsed = time.monotonic() - pressed
    assert elapsed < 5.0, f"cancelled after {elapsed:.1f} s"
    assert "cancelled by the user" in browser.find_element(By.ID, "error").text
    job = _get_json(f"{base}/api/jobs/{job_id}")
    assert job["status"] == "cancelled" and job["finished_at"] is not None
    folder = project / job["out_dir"]
    assert (folder / "RELION_JOB_EXIT_ABORTED").is_file()
    assert not (folder / "RELION_JOB_EXIT_SUCCESS").exists()
    assert browser.find_element(By.ID, "delete").is_displayed()
