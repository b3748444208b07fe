"""The app as a user sees it: `streamlit run` in a subprocess, opened by headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import emopulse.dashboard

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
APP = Path(emopulse.dashboard.__file__).with_name("app.py")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium "
                       "(apt-get install chromium fonts-noto-cjk fonts-noto-color-emoji)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)  # polling interval, not a timing guess: the deadline bounds the wait
    raise TimeoutError(f"streamlit did not listen on {port} within {deadline_s} s")


@pytest.fixture
def served_app(published_home, tmp_path):
    port = free_port()
    log = (tmp_path / "streamlit.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        env=dict(os.environ, EMOPULSE_HOME=str(published_home.home)),
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def test_dashboard_renders_in_chromium(served_app, published_home, tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.goto(served_app)
            page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
            # all three charts drawn (Streamlit's vega-embed renders SVG), and the model table
            page.wait_for_function(
                "document.querySelectorAll('[data-testid=\"stVegaLiteChart\"] svg.marks').length >= 3",
                timeout=60_000,
            )
            page.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)
            values = [e.inner_text() for e in page.query_selector_all('[data-testid="stMetricValue"]')]
            assert values[:3] == [str(published_home.comments), str(published_home.videos),
                                  str(published_home.emotes)]
            assert "41.0%" in values
            assert page.get_by_text("Emote distribution").is_visible()
            labels = page.locator('[data-testid="stVegaLiteChart"] svg text').all_text_contents()
            assert {"笑哭", "星星眼", "others"} <= set(labels)
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
