"""The dashboard in a real browser: `streamlit run app.py` on a free localhost port, driven by headless
Chromium (Debian's package, through Playwright). Screenshots go to $ARTIFACTS_DIR (test-artifacts/)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_app import make_sweep

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTS_WITHIN = 90  # seconds for streamlit to answer, on two busy cores
WAIT_MS = 60_000  # for the app to render after an action
# Every expectation waits as long: a chart on a freshly opened page took over 5 s (the default) beside a
# running experiment.
sync_api.expect.set_options(timeout=WAIT_MS)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no {CHROMIUM} (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dashboard_url(tmp_path: Path) -> Iterator[str]:
    """`streamlit run app.py` from the repository root (so with its .streamlit/config.toml), always stopped."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    with (tmp_path / "streamlit.log").open("wb") as log:
        server = subprocess.Popen(
            [*command, "--server.headless", "true"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTS_WITHIN
        while True:
            assert server.poll() is None, (tmp_path / "streamlit.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, (
                    "streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text()
                )
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def settled(page: Any) -> None:
    """Wait until the app's script has finished its run: what shows is then what it drew."""
    app = page.get_by_test_id("stApp")
    sync_api.expect(app).to_have_attribute("data-test-script-state", "notRunning")


def artifacts_dir() -> Path:
    artifacts = ROOT / os.environ.get("ARTIFACTS_DIR", "test-artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    return artifacts


def open_runs_dir(browser: Any, dashboard_url: str, runs: Path) -> Any:
    """A page of the dashboard looking at the runs directory `runs`."""
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(dashboard_url)
    runs_box = page.get_by_role("textbox", name="runs directory")
    runs_box.fill(str(runs))
    runs_box.press("Enter")
    settled(page)
    return page


def choose(page: Any, label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True)).click()
    # The list shows only the options that fit: typing filters it, so that the one wanted is drawn.
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).click()
    settled(page)


def no_exception(page: Any) -> None:
    """Fail on an exception box: the app raised where a reader would see it."""
    sync_api.expect(page.get_by_test_id("stException")).to_have_count(0)


def y_range(page: Any, index: int = 0) -> list[float]:
    """The y axis range that plotly drew for the page's visible chart number `index` (a hidden tab's charts
    stay in the page)."""
    shown = "[...document.querySelectorAll('.js-plotly-plot')].filter(plot => plot.offsetParent !== null)"
    return page.evaluate(f"{shown}[{index}]._fullLayout.yaxis.range")


def test_pick_a_run_move_the_cycle_play_and_see_the_charts(dashboard_url: str, small_run: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name in ("first", "second"):
        shutil.copytree(small_run, runs / name)
    artifacts = artifacts_dir()
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = open_runs_dir(browser, dashboard_url, runs)
            choose(page, "run", "first")
            expect(page.get_by_text(f"complete · {runs.resolve() / 'first'}")).to_be_visible()
            title = page.locator(".js-plotly-plot .gtitle").first
            expect(title).to_have_text("refusal_rate at cycle 2")
            nodes = page.locator(".js-plotly-plot .scatterlayer .trace:last-child .point")  # the last trace
            expect(nodes).to_have_count(4)

            slider = page.get_by_role("slider")
            slider.focus()
            page.keyboard.press("Home")
            settled(page)
            expect(title).to_have_text("refusal_rate at cycle 0")
            page.screenshot(path=artifacts / "dashboard-network.png", full_page=True)
            page.get_by_role("button", name="▶ play").click()
            expect(title).to_have_text("refusal_rate at cycle 2")  # it played every cycle
            expect(page.get_by_role("button", name="▶ play")).to_be_visible()  # and stopped
            expect(slider).to_have_attribute("aria-valuetext", "2")  # the slider followed it
            no_exception(page)

            page.get_by_role("tab", name="Curves").click()
            settled(page)
            expect(page.locator(".js-plotly-plot").filter(visible=True)).to_have_count(3)
            expect(page.get_by_text("share of nodes drifted")).to_be_visible()
            expect(page.get_by_text("mean refusal_rate by hops from the attack")).to_be_visible()
            low, high = y_range(page, 0)  # refusal_rate per node: a rate's axis
            assert low >= -0.05 and high <= 1.05, (low, high)
            page.screenshot(path=artifacts / "dashboard-curves.png", full_page=True)
            no_exception(page)

            for view in ("Defense", "Compare"):
                page.get_by_role("tab", name=view).click()
                settled(page)
                no_exception(page)
            expect(page.locator(".js-plotly-plot")).to_have_count(1)  # Compare's chart
            page.screenshot(path=artifacts / "dashboard-compare.png", full_page=True)
        finally:
            browser.close()


def test_a_link_with_query_parameters_reopens_the_same_run_view_and_cycle(
    dashboard_url: str, small_run: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    for name in ("first", "second"):
        shutil.copytree(small_run, runs / name)
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = open_runs_dir(browser, dashboard_url, runs)
            choose(page, "run", "second")
            page.get_by_role("slider").focus()
            page.keyboard.press("Home")
            settled(page)
            page.keyboard.press("ArrowRight")  # cycle 1
            settled(page)
            expect(page.locator(".js-plotly-plot .gtitle").first).to_have_text("refusal_rate at cycle 1")
            link = page.url
            assert "run=second" in link and "cycle=1" in link, link

            again = browser.new_page(viewport={"width": 1400, "height": 1800})
            again.goto(link)
            settled(again)
            expect(again.get_by_text(f"complete · {runs.resolve() / 'second'}")).to_be_visible()
            expect(again.locator(".js-plotly-plot .gtitle").first).to_have_text("refusal_rate at cycle 1")
            expect(again.get_by_role("slider")).to_have_attribute("aria-valuetext", "1")

            again.get_by_role("tab", name="Curves").click()
            settled(again)
            assert "view=Curves" in again.url, again.url
            third = browser.new_page(viewport={"width": 1400, "height": 1800})
            third.goto(again.url)
            settled(third)
            expect(third.get_by_text(f"complete · {runs.resolve() / 'second'}")).to_be_visible()
            expect(third.get_by_text("share of nodes drifted")).to_be_visible()  # the Curves tab
            no_exception(third)
        finally:
            browser.close()


def test_the_experiments_page_on_the_committed_results(dashboard_url: str) -> None:
    results = ROOT / "experiments" / "results"
    names = sorted(path.parent.name for path in results.glob("*/verdict.json"))
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(f"{dashboard_url}/?runs_dir={results}")
            settled(page)
            expect(page.get_by_role("tab", name="Experiments")).to_have_attribute("aria-selected", "true")
            for name in names:
                choose(page, "experiment", name)
                expect(page.get_by_text(str(results.resolve() / name), exact=True)).to_be_visible()
                no_exception(page)
                if name == "defenses":
                    page.screenshot(path=artifacts_dir() / "dashboard-experiment.png", full_page=True)
        finally:
            browser.close()


def test_open_the_sweep_view_and_see_the_interval_chart(
    dashboard_url: str, request: pytest.FixtureRequest, small_run: Path, tmp_path: Path
) -> None:
    request.getfixturevalue("ray_cluster")  # the sweep's runs are Ray tasks
    runs = tmp_path / "runs"
    shutil.copytree(small_run, runs / "first")
    (tmp_path / "spec").mkdir()
    make_sweep(tmp_path / "spec", runs / "doses")
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = open_runs_dir(browser, dashboard_url, runs)
            page.get_by_role("tab", name="Sweeps").click()
            settled(page)
            expect(page.get_by_text(f"complete · {runs.resolve() / 'doses'}")).to_be_visible()
            choose(page, "metric", "train_loss")
            chart = page.locator(".js-plotly-plot").first
            expect(chart.locator(".gtitle")).to_have_text("mean train_loss over runs, with 95% intervals and each run")
            expect(chart.locator(".scatterlayer .trace")).to_have_count(6)  # a band, the runs, the mean per cell
            expect(chart.locator(".scatterlayer .js-fill")).to_have_count(2)  # the bands, filled
            no_exception(page)
            expect(page.get_by_text("Cells", exact=True)).to_be_visible()
            page.screenshot(path=artifacts_dir() / "dashboard-sweep.png", full_page=True)
        finally:
            browser.close()
