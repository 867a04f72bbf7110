"""A real browser on the drawing page: headless Chromium (Debian's package, no download) driven
by Playwright. Draws digits with the mouse and with touch, presses Predict, reads the top-5.

Runs wherever chromium and playwright are installed; skipped with the reason otherwise, except
under CI (CI=true), where it must run. A screenshot of each drawing is saved under
$REDIGITS_ARTIFACTS (default: artifacts/ at the repository root)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from inference.server import ServerSettings, ServerThread, create_app

from ..conftest import STROKES

REPO = Path(__file__).resolve().parents[3]


def _need(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI must run the browser test (.ci/run installs chromium)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser():
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    if chromium is None:
        _need("no chromium on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed (pip install -e '.[test]')")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []   # Chromium's sandbox refuses root
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=args)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page_url(lenet_classifier):
    with ServerThread(create_app(lenet_classifier, ServerSettings())) as url:
        yield url


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("REDIGITS_ARTIFACTS") or REPO / "artifacts") / "inference"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(browser, url, touch=False):
    context = browser.new_context(viewport={"width": 820, "height": 640}, has_touch=touch)
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("document.getElementById('model').textContent.includes('classes')")
    return context, page


def _to_page(page, x: float, y: float) -> tuple[float, float]:
    box = page.locator("#canvas").bounding_box()
    return box["x"] + x * box["width"] / 280, box["y"] + y * box["height"] / 280


def _predictions(page) -> list[tuple[str, float, str]]:
    return page.locator("#predictions li").evaluate_all(
        "items => items.map(li => [li.dataset.label, Number(li.dataset.probability),"
        " li.querySelector('.pct').textContent])")


def test_draw_with_the_mouse_and_predict(browser, page_url, artifacts):
    context, page = _open(browser, page_url)
    page.uncheck("#live")
    for stroke in STROKES["7"]:
        page.mouse.move(*_to_page(page, *stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*_to_page(page, *point), steps=6)
        page.mouse.up()
    assert page.locator("#predictions li").count() == 0          # live prediction was off
    with page.expect_response(lambda r: r.url.endswith("/predict")) as response:
        page.click("#predict")
    assert response.value.status == 200
    page.wait_for_selector("#predictions li")
    shot = artifacts / "browser_mouse_7.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    predictions = _predictions(page)
    assert len(predictions) == 5 and predictions[0][0] == "7"
    assert predictions[0][1] > 0.5 and predictions[0][2].endswith(" %")
    assert [p[1] for p in predictions] == sorted((p[1] for p in predictions), reverse=True)

    page.click("#clear")
    assert page.locator("#predictions li").count() == 0
    blank = page.evaluate("""() => { const c = document.getElementById('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return d.every(v => v === 255); }""")
    assert blank
    context.close()


def test_draw_with_touch_predicts_as_you_draw(browser, page_url, artifacts):
    context, page = _open(browser, page_url, touch=True)
    cdp = context.new_cdp_session(page)
    for stroke in STROKES["4"]:
        points = [_to_page(page, *p) for p in stroke]
        dense = [(a[0] + (b[0] - a[0]) * t / 8, a[1] + (b[1] - a[1]) * t / 8)
                 for a, b in zip(points, points[1:]) for t in range(8)] + [points[-1]]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart",
                                              "touchPoints": [{"x": dense[0][0], "y": dense[0][1]}]})
        for x, y in dense[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    # no Predict click: the page predicts while drawing and after each stroke
    page.wait_for_function("() => { const li = document.querySelector('#predictions li');"
                           " return li && li.dataset.label === '4'; }", timeout=15000)
    shot = artifacts / "browser_touch_4.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    assert len(_predictions(page)) == 5
    context.close()
