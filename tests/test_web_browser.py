"""The review pages in a real browser: Debian's chromium, driven by Selenium through /usr/bin/chromedriver,
against a real server with tiny plates. Log in, watch a running render's progress move, play a flipbook,
compare two versions, approve, and be refused another project's pages and thumbnails.

Screenshots land in the test's temporary folder (printed at the end of each test that takes one).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import pytest
from web_fixtures import add_user, tiny_plate, web_server

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render

    tmp = tmp_path_factory.mktemp("web-browser")
    data = tmp / "server-data"
    tokens = {name: add_user(data, name) for name in ("alice", "bob")}
    srv = web_server(data)
    try:
        plate = plate_frames(tiny_plate(tmp / "plate", range(1001, 1009), size=(96, 54)))
        with Client(srv.address, tokens["alice"]) as alice:
            v1 = submit_render(alice, RenderSpec(project="show-a", shot="sh010", pass_name="passthrough"), plate)
            list(alice.watch(v1.render_id))
            v2 = submit_render(alice, RenderSpec(project="show-a", shot="sh010", model="test-slow-probe",
                                                 options={"seconds": "0"}, label="probe"),
                               parent_render=v1.render_id)
            list(alice.watch(v2.render_id))
        with Client(srv.address, tokens["bob"]) as bob:
            secret = submit_render(bob, RenderSpec(project="show-b", shot="sh900", pass_name="passthrough"),
                                   {1001: plate[1001]})
            list(bob.watch(secret.render_id))
        yield {"srv": srv, "tokens": tokens, "plate": plate, "v1": v1.render_id, "v2": v2.render_id,
               "bob": secret.render_id, "url": srv.web.url.rstrip("/"), "shots": tmp / "screenshots"}
    finally:
        srv.stop(grace=0.5, work_grace=0.5)


@pytest.fixture(scope="module")
def browser(site: Dict[str, Any]) -> Iterator[Any]:
    if not CHROMEDRIVER.exists() or not CHROMIUM.exists():
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: "
                    "apt-get install -y chromium chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium look for a browser of its own
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    site["shots"].mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the element is not there yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def ready(driver: Any) -> bool:
    return driver.execute_script("return document.body.dataset.ready === '1'")


def shot(driver: Any, site: Dict[str, Any], name: str) -> Path:
    path = site["shots"] / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def test_log_in_and_watch_a_running_render_move(browser: Any, site: Dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render

    browser.get(site["url"] + "/queue")
    assert "/login" in browser.current_url
    browser.find_element(By.ID, "token").send_keys("sp_wrong-token")
    browser.find_element(By.ID, "login").click()
    assert "not valid" in wait_for(lambda: browser.find_element(By.ID, "login-error").text, "the login error")
    browser.find_element(By.ID, "token").send_keys(site["tokens"]["alice"])
    browser.find_element(By.ID, "login").click()
    wait_for(lambda: browser.current_url.endswith("/queue") and ready(browser), "the queue page")
    assert browser.find_element(By.ID, "who").text == "alice"
    assert not browser.find_elements(By.ID, "unsupported")  # cancel, suspend, resume and reorder are all offered

    with Client(site["srv"].address, site["tokens"]["alice"]) as alice:
        running = submit_render(alice, RenderSpec(project="show-a", shot="sh020", model="test-slow-probe",
                                                  options={"seconds": "1.2"}), site["plate"])
    row = f"q-{running.render_id}"
    step = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, f"#{row} .step").text.startswith("frame ")
                    and browser.find_element(By.CSS_SELECTOR, f"#{row} .step").text, "live step progress")
    later = wait_for(lambda: (text := browser.find_element(By.CSS_SELECTOR, f"#{row} .step").text) != step and text,
                     "the progress to move")
    assert later.startswith("frame ")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"#{row} .cell.f-done"), "a finished frame cell")
    shot(browser, site, "queue")
    # Held across the redraws that the next submit and the reorder cause: an unchanged row keeps its elements,
    # so a button under the pointer is never swapped out from under the click.
    cancel = browser.find_element(By.CSS_SELECTOR, f"#{row} button.cancel")
    with Client(site["srv"].address, site["tokens"]["alice"]) as alice:  # waits behind the running one
        waiting = submit_render(alice, RenderSpec(project="show-a", shot="sh021", model="test-slow-probe",
                                                  options={"seconds": "0"}, priority=-5), site["plate"])
    up = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"#q-{waiting.render_id} button.up"), "Up")
    up[0].click()
    wait_for(lambda: site["srv"].catalog.get_render(waiting.render_id).settings.get("priority") == -4, "reorder")
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, f"#q-{waiting.render_id} input.priority")
             .get_attribute("value") == "-4", "the redrawn priority")
    cancel.click()
    wait_for(lambda: site["srv"].catalog.get_render(running.render_id).state == "CANCELLED", "the cancel")


def test_play_a_flipbook_and_compare_two_versions(browser: Any, site: Dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{site['url']}/renders/{site['v2']}")
    wait_for(lambda: ready(browser), "the version page")
    assert browser.find_element(By.ID, "fps").text == "24 fps"  # the plate's framesPerSecond
    assert len(browser.find_elements(By.CSS_SELECTOR, "#sheet figure")) == 8  # contact sheet: every frame
    assert "x the plate's own" in browser.find_element(By.ID, "qc").text  # the render's flicker figure
    frame = browser.find_element(By.ID, "fb-frame")
    assert frame.text == "frame 1001"
    browser.find_element(By.ID, "fb-play").click()
    seen = set()
    deadline = time.monotonic() + 20
    while len(seen) < 4 and time.monotonic() < deadline:
        seen.add(frame.get_attribute("data-frame"))
        time.sleep(0.03)
    browser.find_element(By.ID, "fb-play").click()  # pause
    assert len(seen) >= 4, seen  # the flipbook played through frames
    assert browser.execute_script("return document.getElementById('fb-a').naturalWidth") == 96

    # A/B against the previous version: a wipe, then side by side.
    Select(browser.find_element(By.ID, "compare")).select_by_value(site["v1"])
    wait_for(lambda: browser.execute_script("return document.getElementById('fb-b').naturalWidth") == 96,
             "the B image")
    assert site["v1"] in browser.find_element(By.ID, "fb-b").get_attribute("src")
    assert browser.find_element(By.ID, "stage").get_attribute("class") == "stage wipe"
    assert "inset(0px 0px 0px 50%)" in browser.execute_script("return document.getElementById('pane-b').style.clipPath")
    shot(browser, site, "wipe")
    Select(browser.find_element(By.ID, "compare-mode")).select_by_value("side")
    assert browser.find_element(By.ID, "stage").get_attribute("class") == "stage side"
    Select(browser.find_element(By.ID, "compare")).select_by_value("source")
    wait_for(lambda: "/source.jpg" in browser.find_element(By.ID, "fb-b").get_attribute("src"), "the source plate")
    shot(browser, site, "side-by-side")

    # The settings diff on the shot page names what changed between the two versions.
    browser.get(f"{site['url']}/shots/show-a/sh010")
    wait_for(lambda: ready(browser), "the shot page")
    diff = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#diff table").text, "the settings diff")
    assert "model" in diff and "test-slow-probe" in diff and "passthrough" in diff


def test_a_running_versions_page_keeps_the_viewers_note_and_comparison(browser: Any, site: Dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render

    with Client(site["srv"].address, site["tokens"]["alice"]) as alice:
        running = submit_render(alice, RenderSpec(project="show-a", shot="sh040", model="test-slow-probe",
                                                  options={"seconds": "1.0"}), site["plate"])
    rid = running.render_id
    browser.get(f"{site['url']}/renders/{rid}")
    wait_for(lambda: ready(browser), "the version page")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#sheet figure"), "a first finished frame")
    # The viewer compares with the source plate, then starts a note: new frames keep arriving meanwhile.
    # Each action finds its element afresh: a redraw may replace the page between finding and acting.
    wait_for(lambda: Select(browser.find_element(By.ID, "compare")).select_by_value("source") or True, "compare")
    before = len(browser.find_elements(By.CSS_SELECTOR, "#sheet figure"))
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#sheet figure")) > before, "a redraw with new frames")
    assert Select(browser.find_element(By.ID, "compare")).first_selected_option.get_attribute("value") == "source"
    def start_note() -> Any:
        field = browser.find_element(By.CSS_SELECTOR, ".review input.note")
        field.click()
        return field

    note = wait_for(start_note, "the note field")
    note.send_keys("grain too strong on the left")
    wait_for(lambda: site["srv"].catalog.get_render(rid).state == "FINISHED", "the render to finish", 60)
    time.sleep(2.0)  # past the page's redraw delay: a redraw now would replace the field and lose the text
    assert note.get_attribute("value") == "grain too strong on the left"  # the same element, text intact
    note.send_keys(Keys.TAB)  # leaving the field sends the note; then the page catches up with the render
    wait_for(lambda: site["srv"].catalog.get_render(rid, with_frames=False).note == "grain too strong on the left",
             "the note")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#sheet figure")) == 8, "every frame on the sheet")
    assert Select(browser.find_element(By.ID, "compare")).first_selected_option.get_attribute("value") == "source"


def test_approve_a_version(browser: Any, site: Dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{site['url']}/shots/show-a/sh010")
    wait_for(lambda: ready(browser), "the shot page")
    browser.find_element(By.CSS_SELECTOR, f"#v-{site['v2']} button.approve").click()
    wait_for(lambda: site["srv"].catalog.get_render(site["v2"]).approved, "the approval in the catalog")
    wait_for(lambda: "is-approved" in browser.find_element(By.ID, f"v-{site['v2']}").get_attribute("class"),
             "the approved row")
    assert browser.find_element(By.CSS_SELECTOR, f"#v-{site['v2']} button.approve").text == "Unapprove"
    shot(browser, site, "shot")


def test_another_projects_pages_and_thumbnails_are_refused(browser: Any, site: Dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{site['url']}/renders/{site['bob']}")
    assert "no render" in browser.find_element(By.ID, "error").text  # the same answer as for a missing one
    browser.get(f"{site['url']}/shots/show-b/sh900")
    assert "not a member" in browser.find_element(By.ID, "error").text
    browser.get(f"{site['url']}/shots")
    wait_for(lambda: ready(browser), "the shots page")
    assert "show-b" not in browser.find_element(By.ID, "content").text
    own = f"/api/renders/{site['v1']}/frames/1001/output.jpg?size=thumb"
    foreign = f"/api/renders/{site['bob']}/frames/1001/output.jpg?size=thumb"
    digest = site["srv"].catalog.get_render(site["bob"]).frames[0].output_digest
    script = "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then((r) => done(r.status));"
    assert browser.execute_async_script(script, own) == 200  # the same browser session reaches its own
    assert browser.execute_async_script(script, foreign) == 404
    # By digest: bob's output (it carries his render's provenance, so no render of alice's has those bytes).
    assert browser.execute_async_script(script, f"/api/blobs/{digest}.jpg") == 403
    assert browser.execute_async_script(script, f"/api/blobs/{digest}.exr") == 403
