"""The dashboard in a real headless Chromium (P14, P8, D8): log in, edit a rule, see it.

Drives Debian's ``/usr/bin/chromium`` through ``/usr/bin/chromedriver`` with
Selenium (never downloads a browser: the driver path is given, so Selenium
Manager is not used).  Skipped, with the reason, when either is missing.
The app runs in werkzeug's threaded server on an ephemeral port.

Set ``DIALER_SCREENSHOT_DIR=/some/dir`` to keep a full-page PNG of every page.
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from controller import config as config_mod
from controller import create_app
from controller.models import Agent
from controller.services import reporting, users
from esl_dialer.messages import AgentState
from test_dashboard import PASSWORD, seed

CHROMIUM = os.environ.get("DIALER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DIALER_CHROMEDRIVER", "/usr/bin/chromedriver")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} not found: apt-get install chromium chromium-driver (Debian package {package})"
    return None


@pytest.fixture
def live_server(db, db_url):
    """The dashboard on 127.0.0.1:<ephemeral port> in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    users.add_user(db, "sup", PASSWORD)
    cfg = config_mod.TestConfig(db_url)
    app = create_app(cfg)
    app.config.update(DASHBOARD_STREAM_INTERVAL_S=0.3, DASHBOARD_STREAM_MAX_S=30)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["dialer_db"].dispose()


@pytest.fixture
def browser(tmp_path):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path / "chromium-profile"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,900", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _shot(driver, name: str) -> None:
    target = os.environ.get("DIALER_SCREENSHOT_DIR")
    if not target:
        return
    import base64

    Path(target).mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000), "scale": 1},
    })
    (Path(target) / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def test_p14_browser_login_edit_rule_and_see_live_state(live_server, browser, db):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    ids = seed(db)
    wait = WebDriverWait(browser, 10)
    q1 = ids["q1"]
    hot, main = ids["pools"]["hot"], ids["pools"]["main"]

    # Login required: the pools page sends us to the login form.
    browser.get(f"{live_server}/pools")
    wait.until(EC.title_contains("Log in"))
    _shot(browser, "01-login")
    browser.find_element(By.ID, "username").send_keys("sup")
    browser.find_element(By.ID, "password").send_keys("not the password")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-error"), "Wrong user name or password"))
    browser.find_element(By.ID, "username").clear()
    browser.find_element(By.ID, "username").send_keys("sup")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(EC.title_contains("Pools"))
    assert browser.current_url.endswith("/pools")
    _shot(browser, "03-pools")

    # Edit alice-queue's rule: percentage 70/30 -> priority with Main list first.
    browser.find_element(By.CSS_SELECTOR, f'tr[data-queue="{q1}"] a.button').click()
    wait.until(EC.title_contains("Rules of alice-queue"))
    _shot(browser, "04-rules-before")
    Select(browser.find_element(By.ID, "selection_mode")).select_by_value("priority")
    pos = browser.find_element(By.NAME, f"feed-{hot}-position")
    pos.clear()
    pos.send_keys("3")
    browser.find_element(By.NAME, f"feed-{hot}-shareable").click()
    lead = browser.find_element(By.ID, "lead_minutes")
    lead.clear()
    lead.send_keys("8")
    browser.find_element(By.CSS_SELECTOR, "#rules-form button.primary").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-ok"), "applied"))
    _shot(browser, "05-rules-applied")

    # The form shows the new rule ...
    assert Select(browser.find_element(By.ID, "selection_mode")).first_selected_option.text == "priority"
    rows = [r.get_attribute("data-pool") for r in browser.find_elements(By.CSS_SELECTOR, "table.feeds-edit tbody tr")]
    assert rows == ["Main list", "Hot leads"]
    assert browser.find_element(By.NAME, f"feed-{hot}-shareable").is_selected()
    # ... the pools page too ...
    browser.get(f"{live_server}/pools")
    feeds = browser.find_element(By.CSS_SELECTOR, f'tr[data-queue="{q1}"] td.feeds').text
    assert feeds.index("Main list") < feeds.index("Hot leads"), feeds
    assert "priority" in browser.find_element(By.CSS_SELECTOR, f'tr[data-queue="{q1}"]').text
    # ... and the queue service, i.e. the next lease (P8).
    q = reporting.queue(db, q1)
    assert q.selection_mode == "priority" and q.lead_minutes == 8
    assert [(f.pool_id, f.position, f.shareable) for f in q.feeds] == [(main, 1, True), (hot, 3, True)]

    # A bad value gets a clear message and changes nothing.
    browser.get(f"{live_server}/queues/{q1}/rules")
    lead = browser.find_element(By.ID, "lead_minutes")
    browser.execute_script("arguments[0].removeAttribute('min'); arguments[0].value = '0';", lead)
    browser.find_element(By.CSS_SELECTOR, "#rules-form button.primary").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "form-error"), "Lead minutes must be between"))
    _shot(browser, "06-rules-error")
    assert reporting.queue(db, q1).lead_minutes == 8

    # Live agent state over SSE: the row changes without a page reload (D8, X3).
    browser.get(f"{live_server}/agents")
    bob = ids["agents"]["bob"]
    cell = (By.CSS_SELECTOR, f'tr[data-agent="{bob}"] [data-field="state"] .badge')
    wait.until(EC.text_to_be_present_in_element(cell, "idle"))
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-live-text]"), "live ·"))
    browser.execute_script("window.__noReload = true;")
    with db.session() as s:
        s.get(Agent, bob).state = AgentState.TALKING
    wait.until(EC.text_to_be_present_in_element(cell, "talking"))
    assert browser.execute_script("return window.__noReload === true;")
    assert browser.find_element(By.CSS_SELECTOR, '[data-agent-count="talking"]').text == "2"
    # An agent registered while the page is open appears as a new row.
    from controller.services import workers
    workers.add_worker(db, "pc-erin", agent="erin", campaign_id=ids["campaign_id"], extension="1005")
    new_row = (By.XPATH, '//table[@id="agents"]//tr[th[normalize-space()="erin"]]')
    wait.until(EC.presence_of_element_located(new_row))
    assert "offline" in browser.find_element(*new_row).text
    assert browser.execute_script("return window.__noReload === true;")
    _shot(browser, "07-agents")

    # The other pages render for a person.
    browser.get(f"{live_server}/campaigns")
    assert "Spring renewals" in browser.find_element(By.ID, "campaigns").text
    _shot(browser, "02-campaigns")
    browser.get(f"{live_server}/attempts")
    assert browser.find_elements(By.CSS_SELECTOR, "#attempts tbody tr")
    _shot(browser, "08-attempts")
    browser.get(f"{live_server}/records/{ids['timeline_record']}")
    assert len(browser.find_elements(By.CSS_SELECTOR, "ol.timeline li")) == 3
    _shot(browser, "09-record-timeline")

    # No script errors or Content-Security-Policy violations on any page.
    problems = [e["message"] for e in browser.get_log("browser")
                if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]  # 401/400 above are expected
    assert not problems, problems

    # Log out: pages need a login again.
    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait.until(EC.title_contains("Log in"))
    browser.get(f"{live_server}/campaigns")
    wait.until(EC.title_contains("Log in"))
