"""The exported slide decks work with no internet.

Headless Chromium opens each deck from a local file with every network request blocked, and
checks that reveal.js and MathJax initialised, that the deck has as many slides as the notebook's
slide metadata makes, and that figures rendered. A deck that loads reveal.js from a CDN must fail
the same check, which proves the network really is blocked. Screenshots go to build/test-artefacts/.
"""
import base64
import io
import json
import os

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from PIL import Image

from tests.harness import ROOT
from tools.slides import (DECK_READY, Browser, executed_copy, export_deck, find_chromium,
                          install_libraries, screenshot_slide, slide_count, slide_sizes, too_tall)

ARTEFACTS = ROOT / "build" / "test-artefacts"
LESSON = ROOT / "notebooks" / "00_setup_and_gpus.ipynb"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BLOCKED = {"net::ERR_PROXY_CONNECTION_FAILED", "net::ERR_NAME_NOT_RESOLVED"}  # what OFFLINE_FLAGS cause

# The deck's state as the browser sees it.
PROBE = """({
  slides: Reveal.getTotalSlides(),
  figures: [...document.querySelectorAll('.reveal .slides img')]
             .filter(img => img.complete && img.naturalWidth > 0).length,
  formulas: document.querySelectorAll('.reveal .slides mjx-container').length,
  solutions: [...document.querySelectorAll('.reveal .slides details')]
               .map(d => [d.open, d.querySelectorAll('pre').length, d.textContent.includes('answer')]),
})"""
# Where the first slide with a figure is.
FIRST_FIGURE = "Reveal.getIndices(document.querySelector('.reveal .slides img').closest('section'))"


def _unavailable(reason: str):
    """Skip on a learner's machine; in CI a missing prerequisite is a failure, not a skip."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true, so this fails instead of skipping)")
    pytest.skip(reason)


def chromium_or_skip() -> str:
    """The headless Chromium the browser tests drive (a skip, or in CI a failure, without one)."""
    path = find_chromium()
    if path is None:
        _unavailable("no headless Chromium for the browser tests: install it (Debian/Ubuntu: "
                     "apt-get install chromium; macOS: Google Chrome)")
    return path


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def deck_dir():
    out = ARTEFACTS / "slides"
    try:
        install_libraries(out)
    except RuntimeError as err:  # first run with no registry access: nothing to export with
        _unavailable(str(err))
    return out


def _markdown(text, slide_type):
    return new_markdown_cell(text, metadata={"slideshow": {"slide_type": slide_type}})


def _code(text, slide_type, outputs=()):
    return new_code_cell(text, metadata={"slideshow": {"slide_type": slide_type}}, outputs=list(outputs))


def tiny_notebook() -> dict:
    """An executed-looking notebook, no kernel needed: 4 slides, one figure, two formulas, one
    collapsed solution."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((64, 48)).convert("RGB").save(buffer, format="PNG")
    figure = {"output_type": "display_data", "metadata": {},
              "data": {"image/png": base64.b64encode(buffer.getvalue()).decode(), "text/plain": "<Figure>"}}
    cells = [
        _code("import this", "skip"),
        _markdown("# A tiny deck\nNoise level $\\bar\\alpha_t$, and $$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0$$", "slide"),
        _code("show_images(images)", "subslide", [figure]),
        _markdown("Say this aloud.", "notes"),
        _markdown("A point that appears on a click.\n\n<details><summary>Solution</summary>\n\n"
                  "```python\nx = 1\n\ny = 2\n```\nThe answer.\n</details>", "fragment"),
        _markdown("## Second slide", "slide"),
        _code("print(1 + 1)", "-", [{"output_type": "stream", "name": "stdout", "text": "2\n"}]),
        _markdown("### Below it", "subslide"),
    ]
    return new_notebook(cells=cells)


def _remote(urls: list[str]) -> list[str]:
    return [url for url in urls if not url.startswith(("file:", "data:", "about:"))]


def test_slide_count_follows_nbconvert_and_rise():
    assert slide_count(tiny_notebook()) == 4
    # The first visible cell starts a slide whatever its type; skip and notes cells start nothing.
    leading_fragment = {"cells": [_markdown("a", "skip"), _markdown("b", "fragment"), _markdown("c", "-")]}
    assert slide_count(leading_fragment) == 1
    assert slide_count({"cells": [_markdown("a", "skip"), _markdown("b", "notes")]}) == 0


@pytest.mark.browser
def test_tiny_deck_works_offline(chromium, deck_dir):
    deck = export_deck(tiny_notebook(), deck_dir / "tiny.slides.html")
    with Browser(chromium, offline=True) as browser:
        assert browser.open(deck.as_uri(), DECK_READY), "reveal.js or MathJax did not initialise offline"
        state = browser.evaluate(PROBE)
        requests = browser.requests
    # The solution is collapsed, with its code and its text inside (not spilled after it).
    assert state == {"slides": 4, "figures": 1, "formulas": 2, "solutions": [[False, 1, True]]}
    assert _remote(requests) == [], "the deck asked the network for something"


@pytest.mark.browser
def test_deck_with_reveal_from_a_cdn_fails_offline(chromium, deck_dir):
    """The check above can fail: the same deck with reveal.js on a CDN does not start offline."""
    deck = export_deck(tiny_notebook(), deck_dir / "tiny-cdn.slides.html",
                       reveal_prefix="https://unpkg.com/reveal.js@5.2.1")
    with Browser(chromium, offline=True) as browser:
        # A plain <script src> either ran or failed by the time the page has loaded.
        assert browser.open(deck.as_uri(), "true"), "the page itself did not load"
        assert browser.evaluate("typeof Reveal") == "undefined"
        failures = browser.failures
    # ...and it failed because this browser's network is blocked (not for some other reason).
    cdn = {url: why for url, why in failures.items() if url.startswith("https://unpkg.com/reveal.js@5.2.1/")}
    assert cdn and set(cdn.values()) <= BLOCKED, cdn


@pytest.mark.browser
@pytest.mark.notebooks
def test_lesson_deck_works_offline(chromium, deck_dir):
    nb, error = executed_copy(LESSON, smoke=True, timeout=600)
    assert error is None, f"{LESSON.name} failed in smoke mode, so it has no deck: {error}"
    deck = export_deck(nb, deck_dir / LESSON.name.replace(".ipynb", ".slides.html"))
    screenshot = ARTEFACTS / f"slides-{LESSON.stem}.png"
    with Browser(chromium, offline=True) as browser:
        assert browser.open(deck.as_uri(), DECK_READY), "reveal.js or MathJax did not initialise offline"
        state = browser.evaluate(PROBE)
        where = browser.evaluate(FIRST_FIGURE)
        screenshot_slide(browser, where["h"], where["v"], screenshot)
        requests = browser.requests
    assert state["slides"] == slide_count(json.loads(LESSON.read_text()))
    assert state["figures"] >= 1, "no figure rendered in the deck"
    assert _remote(requests) == [], "the deck asked the network for something"
    darkest, lightest = Image.open(screenshot).convert("L").getextrema()
    assert lightest - darkest > 100, f"the screenshot {screenshot} is blank"


@pytest.mark.browser
def test_a_slide_taller_than_the_screen_is_named_and_a_hidden_input_shortens_one(chromium, deck_dir):
    """The fit check can fail: 30 lines of code and a figure make a slide taller than 720 px, and
    tagging the cell hide-input leaves only the figure on the deck's slide."""
    nb = tiny_notebook()
    nb.cells[2].source = "\n".join(f"line_{i} = {i}" for i in range(30))
    with Browser(chromium, offline=True) as browser:
        sizes = slide_sizes(export_deck(nb, deck_dir / "tall.slides.html"), browser)
        nb.cells[2].metadata["tags"] = ["hide-input"]
        hidden = slide_sizes(export_deck(nb, deck_dir / "hidden.slides.html"), browser)
    assert [s["number"] for s in sizes] == [1, 2, 3, 4] and sizes[0]["canvas"] == 720
    assert sizes[1]["height"] > 720 and sizes[0]["height"] <= 720, sizes
    (problem,) = too_tall(sizes)
    assert problem.startswith("slide 2 ('line_0 = 0 line_1 = 1") and problem.endswith(
        f"is {sizes[1]['height']} px tall, over the 720 px screen"), problem
    assert hidden[1]["height"] <= 720 and too_tall(hidden) == []


@pytest.mark.browser
def test_a_deck_leaves_out_progress_bars_explains_widgets_and_keeps_what_a_cell_prints(deck_dir):
    """tqdm's widget would show on a slide as its frozen text ("0%|"), and its stderr text as noise;
    a slider, which needs a kernel, shows as a line saying where it works."""
    widget = {"output_type": "display_data", "metadata": {},
              "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "a", "version_major": 2,
                                                                    "version_minor": 0},
                       "text/plain": "Loading weights:   0%|          | 0/36 [00:00<?, ?it/s]"}}
    bar = {"output_type": "stream", "name": "stderr", "text": "denoising:  40%|####  | 2/5\r"}
    printed = {"output_type": "stream", "name": "stdout", "text": "loss 0.125\n"}
    warning = {"output_type": "stream", "name": "stderr", "text": "UserWarning: check this\n"}
    slider = {"output_type": "display_data", "metadata": {},
              "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "b", "version_major": 2,
                                                                    "version_minor": 0},
                       "text/plain": "interactive(children=(IntSlider(value=8, description='step'"}}
    nb = new_notebook(cells=[_code("run()", "slide", [widget, bar, printed, warning, slider])])
    html = export_deck(nb, deck_dir / "bars.slides.html").read_text()
    assert "0%|" not in html and "40%|" not in html and "IntSlider" not in html
    assert "loss 0.125" in html and "UserWarning: check this" in html
    assert "An interactive widget: it needs a running kernel" in html
