"""The static site (``python course.py site``) opens offline: every page loads, its images render,
its formulas are typeset and its links resolve; and every slide of every deck fits the screen.

The site is built in smoke mode (it executes each lesson, or reuses an up-to-date executed copy)
into build/test-artefacts/site/; headless Chromium then opens every page from disk with every
network request blocked. A screenshot of the index goes beside it.
"""
import re
from html.parser import HTMLParser

import pytest

import course
from tests.test_slides import ARTEFACTS, BLOCKED, chromium_or_skip
from tools.layout import notebook_paths
from tools.site import build_site
from tools.slides import DECK_READY, Browser, screenshot_slide, slide_sizes, too_tall

pytestmark = pytest.mark.browser

PAGE_READY = "window.MathJax?.startup?.promise.then(() => true)"
IMAGES = """[...document.querySelectorAll('img')].map(img => [img.complete && img.naturalWidth > 0,
                                                          img.alt || img.src.slice(0, 60)])"""


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a" and dict(attrs).get("href"):
            self.links.append(dict(attrs)["href"])


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def site():
    out = ARTEFACTS / "site"
    index, failures = build_site(out, smoke=True, slug=course.REPO_SLUG, ref=course.REF,
                                 badge=course.badge, timeout=600)
    assert not failures, failures
    return out


def test_the_index_lists_every_lesson_with_its_page_and_deck(site):
    text = (site / "index.html").read_text()
    for path in notebook_paths():
        assert f'href="{path.stem}.html"' in text and f'href="{path.stem}.slides.html"' in text
        assert f"colab.research.google.com/github/{course.REPO_SLUG}/blob/{course.REF}" in text


def test_every_page_opens_offline_with_its_images_formulas_and_links(site, chromium):
    pages = sorted(site.glob("*.html"))
    assert len(pages) == 1 + 2 * len(notebook_paths())
    with Browser(chromium, offline=True, size=(1280, 900)) as browser:
        for page in pages:
            deck = page.name.endswith(".slides.html")
            ready = DECK_READY if deck else PAGE_READY if "mjx" in page.read_text() or \
                "$" in page.read_text() else "true"
            assert browser.open(page.resolve().as_uri(), ready, timeout=60), f"{page.name} never loaded"
            broken = [what for loaded, what in browser.evaluate(IMAGES) if not loaded]
            assert not broken, f"{page.name}: images that did not render: {broken}"
            if page.name == "index.html":
                browser.screenshot(site / "index.png")
            parser = Links()
            parser.feed(page.read_text())
            for href in parser.links:
                if re.match(r"^[a-z]+:", href) or href.startswith("#"):
                    continue  # the web (Colab, GitHub, papers) or a place in the page
                target = (page.parent / href.split("#")[0]).resolve()
                assert target.is_file(), f"{page.name} links to {href}, which is not in the site"
    left = {url: why for url, why in browser.failures.items() if why not in BLOCKED}
    assert not left, f"requests that failed for another reason than the blocked network: {left}"
    wanted = [u for u in browser.requests if u and not u.startswith(("file:", "data:", "about:"))]
    assert not wanted, f"the site asked the network for {wanted[:5]}"


def test_a_link_to_another_lesson_points_at_its_page_and_other_files_at_github():
    from tools.slides import web_link

    assert web_link("03_vae.ipynb#latents", "me/course", "v1") == "03_vae.html#latents"
    assert (web_link("../bench/samplers_mnist.md", "me/course", "v1")
            == "https://github.com/me/course/blob/v1/bench/samplers_mnist.md")
    assert web_link("https://arxiv.org/abs/2006.11239", "me/course", "v1").startswith("https:")


def test_every_slide_of_every_deck_fits_a_1280x720_screen(site, chromium):
    """Each slide, every fragment shown, is at most the decks' 720 px tall: nothing scrolls when a
    teacher presents. The tallest slide of each deck is saved as a screenshot beside the site."""
    problems = []
    with Browser(chromium, offline=True) as browser:
        for deck in sorted(site.glob("*.slides.html")):
            sizes = slide_sizes(deck, browser)
            problems += [f"{deck.name}: {problem}" for problem in too_tall(sizes)]
            tallest = max(sizes, key=lambda s: s["height"])
            screenshot_slide(browser, tallest["h"], tallest["v"],
                             site / f"tallest-{deck.name.split('.')[0]}.png")
    assert not problems, "slides taller than the screen (split them, see README):\n" + "\n".join(problems)
