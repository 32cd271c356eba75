"""The review app driven by a real browser (Playwright + Debian's chromium, headless).

Sign in, filter to refusal_then_continue, open a call, click the flag: the audio's
currentTime moves to the flag's start; dismiss the flag, reload, and it stays dismissed.
Skips when /usr/bin/chromium is missing unless CALLQA_REQUIRE_BROWSER=1 (CI), where it fails.
Set CALLQA_SCREENSHOT_DIR to also write the list and call page screenshots used in docs/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.review.app import create_app
from pipeline.review.options import options_from_dict
from pipeline.review.synthetic import background_server, build_demo

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _need_browser():
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} not found (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "python package playwright is not installed"
    if problem:
        if os.environ.get("CALLQA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required (CALLQA_REQUIRE_BROWSER=1) but {problem}")
        pytest.skip(f"browser test skipped: {problem}")


@pytest.fixture()
def browser_page(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    demo = build_demo(tmp_path)
    app = create_app(demo["db"], options_from_dict(demo["options"]))
    with background_server(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(15000)
            yield page, url, demo
        finally:
            browser.close()


def _shot(page, path: Path) -> None:
    """Screenshot for docs/, palette-reduced so the committed PNG stays small."""
    page.screenshot(path=str(path))
    try:
        from PIL import Image
    except ImportError:
        return
    Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def _audio_time(page) -> float:
    return page.evaluate("document.getElementById('player').currentTime")


def test_sign_in_filter_open_seek_dismiss_reload(browser_page):
    page, url, demo = browser_page
    shots = os.environ.get("CALLQA_SCREENSHOT_DIR")

    page.goto(f"{url}/flags")
    assert "/login" in page.url  # not signed in: sent to the sign-in page
    page.fill("input[name=username]", demo["user"])
    page.fill("input[name=password]", demo["password"])
    page.click("button[type=submit]")
    page.wait_for_url("**/flags**")

    page.select_option("#f-type", "refusal_then_continue")
    page.click("#apply")
    page.wait_for_url("**type=refusal_then_continue**")
    types = page.locator("#flag-table td.type").all_inner_texts()
    assert types and set(types) == {"refusal_then_continue"}
    if shots:
        page.select_option("#f-type", "")
        page.select_option("#f-state", "all")
        page.click("#apply")
        page.wait_for_load_state()
        Path(shots).mkdir(parents=True, exist_ok=True)
        _shot(page, Path(shots) / "flag-list.png")
        page.go_back()
        page.wait_for_url("**type=refusal_then_continue**")

    page.click("#flag-table a.open-call:text('call-stereo-01')")
    page.wait_for_url("**/calls/call-stereo-01**")
    # the audio really loads (range requests) before we seek
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    flag = next(f for f in demo["records"]["call-stereo-01"]["flags"] if f["type"] == "refusal_then_continue")
    duration = page.evaluate("document.getElementById('player').duration")
    assert abs(duration - demo["records"]["call-stereo-01"]["duration_s"]) < 0.05

    # Opened from the list, the player is already parked at the flag; move it away, then click the flag.
    page.evaluate("() => { const a = document.getElementById('player'); a.pause(); a.currentTime = 0; }")
    page.wait_for_function("document.getElementById('player').currentTime < 0.5")
    card = page.locator("article.flag", has_text="refusal_then_continue")
    card.locator("button.flag-seek").click()
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {flag['start']}) < 0.3")
    assert abs(_audio_time(page) - flag["start"]) < 0.3

    # a transcript line seeks too
    seg = demo["records"]["call-stereo-01"]["segments"][2]
    page.evaluate("document.getElementById('player').pause()")
    page.locator(f"#transcript button.time[data-seek='{seg['start']:.3f}']").click()
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {seg['start']}) < 0.3")
    page.evaluate("document.getElementById('player').pause()")

    if shots:
        card.locator("button.flag-seek").click()
        page.evaluate("document.getElementById('player').pause()")
        page.evaluate("window.scrollTo(0, 0)")
        _shot(page, Path(shots) / "call-page.png")

    card.locator("input.note").fill("customer agreed later; fine")
    card.locator("button.dismiss").click()
    page.wait_for_load_state()
    page.reload()
    card = page.locator("article.flag", has_text="refusal_then_continue")
    assert card.locator(".verdict-state .verdict").inner_text() == "dismissed"
    assert "by supervisor" in card.locator(".verdict-state").inner_text()
    assert "customer agreed later; fine" in card.inner_text()

    # and the list agrees: no longer open, shown under dismissed
    page.goto(f"{url}/flags?type=refusal_then_continue")
    assert "call-stereo-01" not in page.locator("#flag-table").inner_text()
    page.goto(f"{url}/flags?state=dismissed")
    assert "call-stereo-01" in page.locator("#flag-table").inner_text()


def test_mono_call_plays_in_the_browser(browser_page):
    page, url, demo = browser_page
    page.goto(f"{url}/login")
    page.fill("input[name=username]", demo["user"])
    page.fill("input[name=password]", demo["password"])
    page.click("button[type=submit]")
    page.wait_for_url("**/flags**")
    for call in ("call-mono-02", "call-ulaw-03"):
        page.goto(f"{url}/calls/{call}")
        page.wait_for_function("document.getElementById('player').readyState >= 1")
        dur = page.evaluate("document.getElementById('player').duration")
        assert abs(dur - demo["records"][call]["duration_s"]) < 0.05
