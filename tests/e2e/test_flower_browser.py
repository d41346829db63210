"""Flower in a real browser: Debian's headless Chromium, driven by Selenium through Debian's
ChromeDriver, shows the workers and the finished `jobs.integrate` tasks behind basic auth.

The browser comes from `scripts/install-browser.sh` (Debian's chromium and chromium-driver); nothing
is downloaded at run time. Screenshots are kept in test-artifacts/ (flower-workers.png, flower-tasks.png).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import FLOWER_AUTH, ROOT, System
from tests.e2e.test_system import make_namespace, make_session

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts"
WINDOW = (1400, 900)
WAIT = 30  # seconds, for any one thing the page must show
# As root and offline: no sandbox (root), and no background connections to Google's hosts.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
]


@contextmanager
def chromium(profile: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's headless Chromium through Debian's ChromeDriver, sending Flower's basic auth."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run scripts/install-browser.sh "
                    "(installs Debian's chromium and chromium-driver)", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: `make install` (it is in the dev extras)", pytrace=False)
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_selenium_manager(*args, **kwargs):
        raise AssertionError("Selenium Manager would download a driver or browser: give paths instead")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_selenium_manager)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(ARTIFACTS / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(WAIT)
        # The page gets exactly WINDOW, whatever headless counts as the window's frame.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False})
        # Basic auth for the page and for every XHR it makes.
        token = base64.b64encode(":".join(FLOWER_AUTH).encode()).decode()
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
        yield driver
    finally:
        driver.quit()


def _wait(driver, what: str, check, shot: str):
    """Waits (bounded) until check(driver) is truthy; on a time-out keeps the screenshot and says what was shown."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        # Flower redraws its tables while they are read: an element gone stale means "look again".
        return WebDriverWait(driver, WAIT, poll_frequency=0.25,
                             ignored_exceptions=(StaleElementReferenceException,)).until(check)
    except TimeoutException:
        driver.save_screenshot(str(ARTIFACTS / shot))
        body = driver.find_element("tag name", "body").text
        raise AssertionError(f"Flower did not show {what} within {WAIT}s at {driver.current_url} "
                             f"(screenshot {ARTIFACTS / shot}); the page shows:\n{body[:2000]}") from None


def _integrate_task_ids(system: System, job_ids: list[str]) -> dict[str, str]:
    """The Celery task id of each job's finished `jobs.integrate` task, once Flower has its events."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        tasks = system.flower.get("/api/tasks", params={"taskname": "jobs.integrate", "state": "SUCCESS"}).json()
        found = {job: uuid for uuid, t in tasks.items() for job in job_ids if job in (t.get("args") or "")}
        if len(found) == len(job_ids):
            return found
        time.sleep(0.5)
    raise AssertionError(f"Flower's API does not list the finished integrate tasks of {job_ids}: {found}")


def test_flower_in_a_browser_shows_workers_and_integrate_tasks(
        system: System, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In the test, not in a fixture: a missing browser is a failure of this test, not an error.
    with chromium(tmp_path / "chromium-profile", monkeypatch) as browser:
        _check_flower(system, browser)


def _check_flower(system: System, browser) -> None:
    from selenium.webdriver.common.by import By

    base = f"http://127.0.0.1:{system.flower_port}"
    # Without credentials Flower refuses, pages and API alike; the pages ask for basic auth
    # (Flower's API handlers answer 401 without a WWW-Authenticate header).
    for path in ("/", "/workers", "/tasks", "/api/workers", "/api/tasks"):
        r = httpx.get(base + path, timeout=10)
        assert r.status_code == 401, (path, r.status_code)
        if not path.startswith("/api/"):
            assert r.headers.get("www-authenticate", "").lower().startswith("basic"), (path, r.headers)

    ns = make_namespace(system)
    sessions = [make_session(system, ns, {"ada": "", "bob": ""}, turns=4) for _ in range(3)]
    jobs = [system.call("POST", f"/namespaces/{ns}/sessions/{s}/integrate")["id"] for s in sessions]
    assert [system.wait_job(ns, j)["status"] for j in jobs] == ["succeeded"] * 3
    task_ids = _integrate_task_ids(system, jobs)
    workers = sorted(w for w in system.flower.get("/api/workers", params={"refresh": "true"}).json()
                     if w.split("@")[0] in ("w1", "w2"))
    assert len(workers) == 2, workers

    # Workers page: both workers, online.
    browser.get(base + "/workers")
    assert "Flower" in browser.title, browser.title  # not an error page

    def workers_shown(driver):
        rows = {}
        for row in driver.find_elements(By.CSS_SELECTOR, "#workers-table tbody tr"):
            cells = [c.text.strip() for c in row.find_elements(By.TAG_NAME, "td")]
            if cells:
                rows[cells[0]] = cells
        online = driver.find_element(By.ID, "workers-online").text.strip()
        if all(w in rows and "online" in " ".join(rows[w][1:2]).lower() for w in workers) and online not in ("", "—"):
            return rows
        return None

    rows = _wait(browser, f"the workers {workers} online", workers_shown, "flower-workers.png")
    browser.save_screenshot(str(ARTIFACTS / "flower-workers.png"))
    assert set(workers) <= set(rows), rows

    # Tasks page, filtered to the succeeded integrate tasks: its table is filled by an XHR (POST /tasks/datatable).
    browser.get(base + "/tasks?name=jobs.integrate&state=SUCCESS")
    assert "Flower" in browser.title, browser.title

    def tasks_shown(driver):
        shown = {}
        for job, uuid in task_ids.items():
            found = driver.find_elements(By.XPATH, f"//table[@id='tasks-table']/tbody/tr[@id='{uuid}']")
            if not found:
                return None
            text = found[0].text
            badges = [b.text.strip() for b in found[0].find_elements(By.CSS_SELECTOR, "span.badge")]
            if "jobs.integrate" not in text or "SUCCESS" not in badges:
                return None
            shown[job] = text
        return shown

    shown = _wait(browser, f"the integrate tasks {sorted(task_ids.values())} as SUCCESS", tasks_shown,
                  "flower-tasks.png")
    browser.save_screenshot(str(ARTIFACTS / "flower-tasks.png"))
    assert len(shown) == len(jobs)
    worker_names = {w.split("@")[0] for w in workers}
    assert all(any(n in t for n in worker_names) for t in shown.values()), shown  # each row names its worker
