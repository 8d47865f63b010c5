"""Slide decks from the notebooks: reveal.js HTML that works with no internet, and a headless browser.

Used by ``python course.py slides`` and tests/test_slides.py. A deck is nbconvert's reveal.js
export with everything it needs beside it: reveal.js and MathJax are fetched once from the npm
registry (pinned versions, checked against their published hashes) into build/vendor/ and copied
next to the decks, and nbconvert's CDN scripts (require.js, jQuery, mermaid, the widget manager)
are left out.
"""
import base64
import fcntl
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

from tools.notebooks import ROOT, execute_notebook

BUILD = ROOT / "build"
VENDOR = BUILD / "vendor"
# Pinned, with the npm registry's integrity hash: a changed download fails rather than ships.
REVEAL = ("reveal.js", "5.2.1", "sha512-r7//6mIM5p34hFiDMvYfXgyjXqGRta+/psd9YtytsgRlrpRzFv4RbH76TXd2qD+7ZPZEbpBDhdRhJaFgfQ7zNQ==")
MATHJAX = ("mathjax", "3.2.2", "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==")
REGISTRY = "https://registry.npmjs.org"
# Where each deck finds its libraries, relative to the deck (so a folder of decks can be copied).
REVEAL_PREFIX = "reveal.js"
MATHJAX_URL = "mathjax/tex-svg.js"  # SVG output: no web fonts to fetch
# The tag of a code cell whose deck slide shows its output only (Jupyter Book's name for it).
HIDE_INPUT = "hide-input"
# What tqdm writes: "Loading pipeline components...:  43%|####      | 3/7 [00:01<00:01, 2.9it/s]".
PROGRESS_BAR = re.compile(r"\d+%\|")
# The Open-in-Colab and Open-in-Kaggle badges: images on the services' servers.
BADGE = re.compile(r"\[!\[(Open In (?:Colab|Kaggle))\]\([^)]*\)\]\(([^)]+)\)")

# What nbconvert's reveal and lab templates are given instead of their CDN scripts: nothing for
# require.js and the widget manager, the local MathJax, and the course's own style.
OFFLINE_HEAD = r"""{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], processEscapes: true},
                  svg: {fontCache: 'global'}};
</script>
<script src="{{ resources.mathjax_url }}" defer></script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_css -%}
<style>{{ resources.course_css }}</style>
{%- endblock html_head_css -%}
"""
# nbconvert's reveal template, minus everything it would fetch from a CDN.
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
""" + OFFLINE_HEAD + r"""{%- block footer_js -%}
<script src="{{ resources.reveal.url_prefix }}/dist/reveal.js"></script>
<script src="{{ resources.reveal.url_prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({width: 1280, height: 720, margin: 0.04, center: false, hash: true,
                   slideNumber: "c/t", transition: "slide", pdfSeparateFragments: false,
                   plugins: [RevealNotes]});
</script>
{%- endblock footer_js -%}
"""

# A 1280x720 canvas (16:9, as most projectors) that reveal.js scales to the screen, so these
# sizes are what a room sees: code at 20px on 1280 is readable from the back at full screen.
CSS = """
:root { --jp-code-font-size: 20px; --jp-content-font-size1: 24px; --jp-ui-font-size1: 20px; }
.reveal .slides section { font-size: 24px; }
.reveal .jp-RenderedMarkdown :is(h1, h2, h3) { text-transform: none; }
.reveal .jp-RenderedMarkdown h1 { font-size: 1.9em; }
.reveal .jp-RenderedMarkdown h2 { font-size: 1.5em; }
/* Long lines wrap instead of running off the slide's right edge. */
.reveal div.highlight > pre, .reveal .jp-OutputArea-output pre {
  font-size: 20px; line-height: 1.3; white-space: pre-wrap; overflow-wrap: anywhere; }
.reveal .jp-OutputArea-output img { max-height: 600px; width: auto; margin: 4px 0; }
/* Cells sit close together: the slide's height is for content, not gaps. */
.reveal .jp-Cell { padding-top: 2px; padding-bottom: 2px; }
/* A cell taller than the slide scrolls inside it rather than being cut off (not in the PDF). */
html:not(.print-pdf) .reveal .slides > section > section { height: 100%; overflow-y: auto; }
"""


def slide_count(nb: dict) -> int:
    """The number of slides (horizontal and vertical) a notebook's slide metadata makes.

    nbconvert and RISE both start a slide at the first visible cell, whatever its type; after
    that every ``slide`` or ``subslide`` cell starts one; ``skip`` and ``notes`` cells show nothing.
    """
    types = [c.get("metadata", {}).get("slideshow", {}).get("slide_type", "-") for c in nb["cells"]]
    visible = [t for t in types if t not in ("skip", "notes")]
    return 1 + sum(t in ("slide", "subslide") for t in visible[1:]) if visible else 0


def _integrity_ok(path: Path, integrity: str) -> bool:
    algorithm, digest = integrity.split("-", 1)
    return base64.b64encode(hashlib.new(algorithm, path.read_bytes()).digest()).decode() == digest


def vendor_tarball(package: tuple[str, str, str], registry: str = REGISTRY) -> Path:
    """The npm tarball of ``(name, version, integrity)`` in build/vendor/, fetched once.

    Uses ``npm pack`` when npm is installed, else a plain download of the same registry file.
    """
    name, version, integrity = package
    tarball = VENDOR / f"{name}-{version}.tgz"
    if tarball.exists() and _integrity_ok(tarball, integrity):
        return tarball
    VENDOR.mkdir(parents=True, exist_ok=True)
    try:
        if shutil.which("npm"):
            subprocess.run(["npm", "pack", "--silent", f"{name}@{version}", "--pack-destination", str(VENDOR)],
                           check=True, capture_output=True, timeout=300)
        else:
            with urllib.request.urlopen(f"{registry}/{name}/-/{name}-{version}.tgz", timeout=60) as response:
                tarball.write_bytes(response.read())
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeError(
            f"Cannot fetch {name} {version} from the npm registry ({err}). The slides need it once: "
            f"run this command where the registry is reachable, or put {tarball.name} (from "
            f"`npm pack {name}@{version}`) into {VENDOR}/.") from None
    if not _integrity_ok(tarball, integrity):
        tarball.unlink()
        raise RuntimeError(f"{tarball.name} does not match its pinned integrity hash; deleted it, try again.")
    return tarball


def install_libraries(out_dir: Path) -> None:
    """Put reveal.js (dist, notes plugin) and MathJax (one file) into ``out_dir``, once per version."""
    reveal_dir, mathjax_file = out_dir / REVEAL_PREFIX, out_dir / MATHJAX_URL
    marker, versions = out_dir / ".libraries", f"{REVEAL[:2]} {MATHJAX[:2]}"
    if marker.exists() and marker.read_text() == versions:
        return
    shutil.rmtree(reveal_dir, ignore_errors=True)
    shutil.rmtree(mathjax_file.parent, ignore_errors=True)
    wanted = ("package/LICENSE", "package/dist/", "package/plugin/notes/")
    with tarfile.open(vendor_tarball(REVEAL)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(wanted) and not member.name.endswith(".map"):
                _extract(tar, member, reveal_dir / member.name.removeprefix("package/"))
    with tarfile.open(vendor_tarball(MATHJAX)) as tar:
        _extract(tar, tar.getmember("package/LICENSE"), mathjax_file.parent / "LICENSE")
        _extract(tar, tar.getmember("package/es5/tex-svg.js"), mathjax_file)
    marker.write_text(versions)


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(tar.extractfile(member).read())


LINK = re.compile(r"\]\(([^)\s]+)\)")


def web_link(target: str, slug: str, ref: str) -> str:
    """A markdown link target as a page or deck outside the repository needs it: sibling lessons to their pages, other files of
    the repository to GitHub, anything absolute or in-page unchanged."""
    if re.match(r"^[a-z]+:|^#|^/", target):
        return target
    path, _, anchor = target.partition("#")
    anchor = f"#{anchor}" if anchor else ""
    if "/" not in path and path.endswith(".ipynb"):
        return path.removesuffix(".ipynb") + ".html" + anchor
    resolved = (ROOT / "notebooks" / path).resolve()
    try:
        inside = resolved.relative_to(ROOT)
    except ValueError:
        return target
    return f"https://github.com/{slug}/blob/{ref}/{inside.as_posix()}{anchor}"


DETAILS = re.compile(r"<details>\s*<summary>(.*?)</summary>(.*?)</details>", re.S)


def collapsed_as_html(source: str) -> str:
    """Markdown with ``<details><summary>..</summary> markdown </details>`` blocks (the lessons'
    solutions), each turned into one block of HTML. nbconvert's markdown renderer ends an HTML
    block at the first blank line, so without this a solution shows expanded in decks and pages
    (JupyterLab, Colab and GitHub render the markdown inside the block themselves)."""
    from nbconvert.filters.markdown import markdown2html_mistune

    def one_block(match) -> str:
        inner = markdown2html_mistune(match.group(2).strip())
        inner = re.sub(r"<pre>(.*?)</pre>", lambda m: "<pre>" + m.group(1).replace("\n", "&#10;")
                       + "</pre>", inner, flags=re.S)  # code keeps its lines, without blank ones
        return f"<details><summary>{match.group(1)}</summary>{inner.replace(chr(10), ' ')}</details>"

    return DETAILS.sub(one_block, source)


def with_web_links(nb: dict, slug: str, ref: str) -> dict:
    """A copy of ``nb`` whose markdown links work outside the repository (``web_link``)."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = LINK.sub(lambda m: f"]({web_link(m.group(1), slug, ref)})", source)
    return nb


def _progress_bar(output: dict) -> bool:
    """A progress bar that a cell showed: tqdm's widget (which a deck shows as its frozen text,
    "0%|"), or its text on stderr. Noise on a slide."""
    if output.get("output_type") == "stream":
        text = output.get("text", "") if output.get("name") == "stderr" else ""
    elif "application/vnd.jupyter.widget-view+json" in output.get("data", {}):
        text = output["data"].get("text/plain", "")
    else:
        return False
    return bool(PROGRESS_BAR.search("".join(text) if isinstance(text, list) else text))


WIDGET_NOTE = ("An interactive widget: it needs a running kernel. Present this slide live with "
               "RISE, or run the notebook in JupyterLab or Colab.")


def _widget_note(output: dict) -> dict:
    """A widget's output as a line that says where it works, instead of its Python repr
    ("interactive(children=(IntSlider(...") that a deck with no kernel would show."""
    data = output.get("data", {})
    if "application/vnd.jupyter.widget-view+json" not in data or "image/png" in data:
        return output
    return {"output_type": "display_data", "metadata": {}, "data": {"text/plain": WIDGET_NOTE}}


def export_deck(nb: dict, out_path: Path, source_dir: Path = ROOT / "notebooks",
                reveal_prefix: str = REVEAL_PREFIX) -> Path:
    """Write an executed notebook as a reveal.js deck that needs no network; returns ``out_path``.

    Figures are embedded (outputs and markdown images, which resolve from ``source_dir``); the
    Open-in-Colab and Open-in-Kaggle badges, images on those services' servers, become plain text
    links. A code cell tagged ``hide-input`` shows only its output: its figure is the slide's point
    (the notebook, its site page and RISE keep the code).
    ``reveal_prefix`` is only changed by the test that proves a CDN-hosted reveal.js fails offline.
    """
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import SlidesExporter

    out_path = Path(out_path)
    install_libraries(out_path.parent)
    nb = nbformat.reads(json.dumps(nb), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = collapsed_as_html(BADGE.sub(r"[\1](\2)", cell.source))
        else:
            if HIDE_INPUT in cell.metadata.get("tags", []):
                cell.metadata.setdefault("transient", {})["remove_source"] = True
            cell.outputs = [_widget_note(o) for o in cell.outputs if not _progress_bar(o)]
    exporter = SlidesExporter(
        extra_loaders=[DictLoader({"course_reveal.html.j2": TEMPLATE})],
        template_file="course_reveal.html.j2", reveal_url_prefix=reveal_prefix, reveal_theme="white",
        mathjax_url=MATHJAX_URL, embed_images=True, exclude_input_prompt=True, exclude_output_prompt=True)
    resources = {"metadata": {"name": out_path.name.split(".")[0], "path": str(source_dir)},
                 "course_css": CSS}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    out_path.write_text(body, encoding="utf-8")
    return out_path


def _code_sources(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def executed_copy(path: Path, smoke: bool, timeout: int = 1800) -> tuple[dict | None, str | None]:
    """The executed notebook for ``path``: from build/executed[-smoke]/ if it is error-free and ran
    the same code, in the same order, as ``path`` has now; else run it.

    Only code decides the outputs, so a notebook whose markdown or slide metadata changed since it
    ran gets the executed copy's outputs on its own cells, without running again.
    Returns ``(notebook, None)``, or ``(None, error)`` when the notebook failed.
    """
    path = Path(path)
    executed = BUILD / ("executed-smoke" if smoke else "executed") / path.name
    if executed.exists():
        ran, now = json.loads(executed.read_text()), json.loads(path.read_text())
        failed = any(o.get("output_type") == "error" for c in ran["cells"] for o in c.get("outputs", []))
        if not failed and _code_sources(ran) == _code_sources(now):
            outputs = iter([c for c in ran["cells"] if c["cell_type"] == "code"])
            for cell in now["cells"]:
                if cell["cell_type"] == "code":
                    old = next(outputs)
                    cell["outputs"], cell["execution_count"] = old["outputs"], old["execution_count"]
            return now, None
    executed.parent.mkdir(parents=True, exist_ok=True)
    print(f"running {path.name} ({'smoke' if smoke else 'full'} mode) ...", flush=True)
    result = execute_notebook(path, executed, smoke=smoke, timeout=timeout)
    if result["error"]:
        return None, re.sub(r"\x1b\[[0-9;]*m", "", result["error"])  # no terminal colour codes
    return json.loads(executed.read_text()), None


# --- a headless browser, driven over the DevTools protocol with nothing but the standard library ---

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# No request can leave the machine: every http(s) fetch goes to a dead proxy and every host name
# fails to resolve. file:// pages still load, which is exactly what an offline deck must need.
OFFLINE_FLAGS = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                 "--host-resolver-rules=MAP * ~NOTFOUND"]
CHROMIUM_APPS = ("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
                 "/Applications/Chromium.app/Contents/MacOS/Chromium")


def find_chromium() -> str | None:
    """Chromium or Chrome on the PATH (or in macOS's Applications), else None."""
    on_path = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    return on_path or next((app for app in CHROMIUM_APPS if os.path.exists(app)), None)


class Browser:
    """Headless Chromium over ``--remote-debugging-pipe`` (commands on fd 3, replies on fd 4).

    ``with Browser(offline=True) as b: b.open(url); b.evaluate("1 + 1")``. ``b.requests`` lists
    every URL the page asked for, ``b.failures`` maps those that failed to Chromium's reason.
    """

    def __init__(self, executable: str | None = None, offline: bool = True, size=(1280, 720)):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise RuntimeError("No Chromium or Chrome found: install one (Debian/Ubuntu: apt-get install chromium).")
        self.flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync",
                      "--hide-scrollbars", "--remote-debugging-pipe"]
        self.flags += OFFLINE_FLAGS if offline else []
        self.size, self.requests, self.failures, self._urls = size, [], {}, {}
        self._id, self._buffer, self._session = 0, b"", None

    def __enter__(self):
        self._profile = tempfile.mkdtemp(prefix="course-chromium-")
        self._log = tempfile.TemporaryFile()
        to_chrome, self._send_fd = os.pipe()
        self._recv_fd, from_chrome = os.pipe()
        # Lift the child's ends above fd 4 first, so placing them on 3 and 4 cannot clobber each other.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_chrome, from_chrome)]

        def place_pipes():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [self.executable, *self.flags, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            preexec_fn=place_pipes, close_fds=False)
        for fd in (to_chrome, from_chrome, *high):
            os.close(fd)
        try:
            page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
            self._session = self.call("Target.attachToTarget", targetId=page["targetId"],
                                      flatten=True)["sessionId"]
            self.call("Emulation.setDeviceMetricsOverride", width=self.size[0], height=self.size[1],
                      deviceScaleFactor=1, mobile=False)
            self.call("Page.enable")
            self.call("Network.enable")
        except BaseException:
            self.__exit__()  # never leave a Chromium running behind a failed start
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.call("Browser.close", _timeout=5, _session=False)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._send_fd)
        os.close(self._recv_fd)
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def call(self, method: str, _timeout: float = 30, _session: bool = True, **params) -> dict:
        """Send one DevTools command and return its result (events that arrive meanwhile are noted)."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if _session and self._session:
            message["sessionId"] = self._session
        os.write(self._send_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + _timeout
        while True:
            reply = self._receive(deadline, method)
            if reply.get("method") == "Network.requestWillBeSent":
                self.requests.append(reply["params"]["request"]["url"])
                self._urls[reply["params"]["requestId"]] = reply["params"]["request"]["url"]
            elif reply.get("method") == "Network.loadingFailed":
                self.failures[self._urls.get(reply["params"]["requestId"])] = reply["params"]["errorText"]
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"Chromium refused {method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def _receive(self, deadline: float, method: str) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._recv_fd], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer {method} in time.{self._stderr()}")
            chunk = os.read(self._recv_fd, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited.{self._stderr()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _stderr(self) -> str:
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace").strip()[-2000:]
        return f" Its log ends:\n{tail}" if tail else ""

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def open(self, url: str, ready: str = "true", timeout: float = 20) -> bool:
        """Load ``url``, then wait until the JavaScript ``ready`` is true (or a promise of true).

        Returns False if it never is within ``timeout`` seconds.
        """
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(f"document.readyState === 'complete' && ({ready})"):
                return True
            time.sleep(0.2)
        return False

    def screenshot(self, path: Path) -> Path:
        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return Path(path)

    def pdf(self, path: Path) -> Path:
        """Print the page to PDF with its own page size (reveal.js's ``?print-pdf`` mode sets it)."""
        data = self.call("Page.printToPDF", _timeout=120, printBackground=True, preferCSSPageSize=True)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)


# What the test and the PDF handout wait for: reveal.js has laid the deck out and MathJax has
# typeset it (before MathJax loads, window.MathJax is only our configuration, with no startup).
DECK_READY = ("typeof Reveal !== 'undefined' && Reveal.isReady() && "
              "window.MathJax?.startup?.promise.then(() => true)")


def pdf_handout(deck: Path) -> Path:
    """Print a deck to PDF beside it, one slide per page, with Chromium (offline, like the deck)."""
    with Browser(offline=True) as browser:
        # In print mode reveal.js lays out its .pdf-page elements only after it reports ready.
        ready = f"{DECK_READY} && document.querySelector('.pdf-page') !== null"
        if not browser.open(Path(deck).resolve().as_uri() + "?print-pdf", ready, timeout=60):
            raise RuntimeError(f"{deck} did not finish loading in Chromium, so no PDF was printed.")
        return browser.pdf(Path(deck).with_name(Path(deck).name.replace(".html", ".pdf")))


# Every slide in turn, all its fragments shown, measured as laid out on the deck's 1280x720 canvas
# (before reveal.js scales it to the window): its content height, its first heading or words.
MEASURE_SLIDES = """(async () => {
  Reveal.configure({transition: 'none', fragments: false});
  const painted = () => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  const canvas = Reveal.getConfig().height, sizes = [];
  for (const slide of Reveal.getSlides()) {
    const at = Reveal.getIndices(slide);
    Reveal.slide(at.h, at.v);
    await painted();
    const shown = slide.cloneNode(true);  // without its speaker notes
    shown.querySelectorAll('aside.notes').forEach(notes => notes.remove());
    const heading = shown.querySelector('h1, h2, h3, h4');
    const title = (heading || shown).textContent.replace(/\\s+/g, ' ').replace('¶', '').trim();
    slide.style.height = 'auto';  // its content's own height, not the canvas it may fill
    const height = Math.ceil(slide.scrollHeight);
    slide.style.height = '';
    sizes.push({number: sizes.length + 1, h: at.h, v: at.v, title: title.slice(0, 60),
                height: height, canvas: canvas});
  }
  Reveal.slide(0, 0);
  return sizes;
})()"""


def slide_sizes(deck: Path, browser: "Browser") -> list[dict]:
    """Each slide of ``deck`` (every fragment shown): ``number`` (as the deck's slide counter
    shows it), ``title``, ``height`` of its content and ``canvas`` (the deck's height, 720)."""
    if not browser.open(Path(deck).resolve().as_uri(), DECK_READY, timeout=60):
        raise RuntimeError(f"{deck} did not finish loading in Chromium.")
    return browser.evaluate(MEASURE_SLIDES)


def too_tall(sizes: list[dict]) -> list[str]:
    """One line per slide taller than the canvas, as ``slide_sizes`` measured them."""
    return [f"slide {s['number']} ({s['title']!r}) is {s['height']} px tall, over the "
            f"{s['canvas']} px screen" for s in sizes if s["height"] > s["canvas"]]


def screenshot_slide(browser: "Browser", h: int, v: int, path: Path) -> Path:
    """A screenshot of slide (h, v) of the open deck, every fragment shown."""
    browser.evaluate(f"""(() => {{
      Reveal.configure({{transition: 'none', fragments: false}});
      Reveal.slide({int(h)}, {int(v)});
      return new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))));
    }})()""")
    return browser.screenshot(path)
