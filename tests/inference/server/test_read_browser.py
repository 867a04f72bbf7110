"""The drawing page's "write a number" mode in the real browser (test_browser.py's Chromium and
helpers): "2026" written with the mouse is read as it is written, each digit boxed with its
top-3."""
from __future__ import annotations

from ..conftest import STROKES
from .test_browser import _open, artifacts, browser, page_url   # noqa: F401  (fixtures)

WIDE = 1120          # the wide canvas: four 280 px digit fields


def _to_wide(box: dict, x: float, y: float) -> tuple[float, float]:
    """Canvas pixels to page pixels, from the canvas's bounding box (asked once: each question
    is a round trip to the browser)."""
    return box["x"] + x * box["width"] / WIDE, box["y"] + y * box["height"] / 280


def test_write_2026_with_the_mouse(browser, page_url, artifacts):   # noqa: F811
    context, page = _open(browser, page_url)
    page.check("#wide")
    assert page.evaluate("document.getElementById('canvas').width") == WIDE
    zoom = 0.8
    box = page.locator("#canvas").bounding_box()
    for k, digit in enumerate("2026"):
        for stroke in STROKES[digit]:
            points = [(40 + 260 * k + x * zoom, 28 + y * zoom) for x, y in stroke]
            page.mouse.move(*_to_wide(box, *points[0]))
            page.mouse.down()
            for point in points[1:]:
                page.mouse.move(*_to_wide(box, *point), steps=4)
            page.mouse.up()
    # live reading: no button pressed
    page.wait_for_function("document.getElementById('reading').dataset.text === '2026'",
                           timeout=20000)
    shot = artifacts / "browser_read_2026.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    digits = page.locator("#digits li").evaluate_all(
        "items => items.map(li => [li.dataset.label, li.dataset.top])")
    assert [d[0] for d in digits] == list("2026")
    assert all(len(top) == 3 and top[0] == label for label, top in digits)
    boxed = page.evaluate("""() => { const c = document.getElementById('boxes');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert boxed > 500                                     # boxes and labels drawn over it
    page.click("#clear")
    assert page.locator("#digits li").count() == 0
    page.uncheck("#wide")
    assert page.evaluate("document.getElementById('canvas').width") == 280
    context.close()
