"""The course as a static website: every lesson executed, as a page and as a slide deck, with an index.

Used by ``python course.py site`` and tests/test_site.py. The folder it writes opens from disk with
no internet (MathJax and reveal.js lie beside the pages) and can be copied to any static host.
Links between lessons point at their pages; a link to a file of the repository outside
``notebooks/`` points at that file on GitHub (``REPO_SLUG`` at ``REF`` in course.py), as in the
decks (``tools.slides.with_web_links``).
"""
import html
import json
import re
import shutil
from pathlib import Path

from tools.layout import ROOT, notebook_paths
from tools.slides import (BADGE, MATHJAX_URL, OFFLINE_HEAD, collapsed_as_html, executed_copy,
                          export_deck, install_libraries, with_web_links)

SETUP = "# Setup: make the course's `utils` importable."  # how every lesson's set-up cell begins

# nbconvert's lab page, minus everything it would fetch from a CDN, plus a bar to move around.
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
""" + OFFLINE_HEAD + r"""{%- block body_header -%}
{{ super() }}
<nav class="course-nav">{{ resources.course_nav }}</nav>
{%- endblock body_header -%}
{% block body_footer %}
<nav class="course-nav">{{ resources.course_nav }}</nav>
{{ super() }}
{% endblock body_footer %}
"""

CSS = """
main { max-width: 1100px; margin: 0 auto; padding: 0 1em 3em; }
.course-nav { max-width: 1100px; margin: 0 auto; padding: 0.8em 1em; font: 15px system-ui, sans-serif;
              display: flex; gap: 1.5em; border-bottom: 1px solid #ddd; }
.course-nav:last-of-type { border-top: 1px solid #ddd; border-bottom: none; }
.jp-OutputArea-output img { max-width: 100%; height: auto; }
"""

INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
<style>
body {{ font: 17px/1.5 system-ui, sans-serif; max-width: 960px; margin: 2em auto; padding: 0 1em;
       color: #222; }}
table {{ border-collapse: collapse; width: 100%; margin: 1.5em 0; }}
th, td {{ text-align: left; padding: 0.5em 0.7em; border-bottom: 1px solid #ddd; vertical-align: top; }}
img {{ max-width: 100%; }}
.note {{ color: #555; font-size: 15px; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{intro}</p>
{gallery}
<table>
<tr><th>#</th><th>Lesson</th><th>Slides</th><th>Run it</th></tr>
{rows}
</table>
<p class="note">{note}</p>
</body>
</html>
"""


def lesson_title(nb: dict) -> str:
    """The text of the notebook's first '# ' heading."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            found = re.search(r"^# (.+)$", source, re.M)
            if found:
                return found.group(1).strip()
    return "Untitled"


def export_page(nb: dict, out_path: Path, nav: str, source_dir: Path) -> Path:
    """Write an executed notebook (its links made for the web: ``with_web_links``) as a standalone
    HTML page that needs no network."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = nbformat.reads(json.dumps(nb), as_version=4)
    # The set-up cell is plumbing for Colab and Kaggle, and the checks at the end are the test
    # suite's: a reader of the page has nothing to run or learn in either.
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and c.source.startswith(SETUP))
                and "checks" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = collapsed_as_html(BADGE.sub(r"[\1](\2)", cell.source))
    exporter = HTMLExporter(
        extra_loaders=[DictLoader({"course_page.html.j2": TEMPLATE})],
        template_file="course_page.html.j2", mathjax_url=MATHJAX_URL, embed_images=True,
        exclude_input_prompt=True, exclude_output_prompt=True)
    resources = {"metadata": {"name": out_path.stem, "path": str(source_dir)},
                 "course_css": CSS, "course_nav": nav}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    out_path.write_text(body, encoding="utf-8")
    return out_path


def _nav(paths: list[Path], i: int) -> str:
    links = ['<a href="index.html">All lessons</a>']
    if i > 0:
        links.append(f'<a href="{paths[i - 1].stem}.html">&larr; {paths[i - 1].stem[:2]}</a>')
    if i + 1 < len(paths):
        links.append(f'<a href="{paths[i + 1].stem}.html">{paths[i + 1].stem[:2]} &rarr;</a>')
    links.append(f'<a href="{paths[i].stem}.slides.html">Slides</a>')
    return " ".join(links)


def build_site(out: Path, smoke: bool, slug: str, ref: str, badge, timeout: int = 1800,
               paths: list[Path] | None = None) -> tuple[Path, list[str]]:
    """Execute every lesson (or reuse an up-to-date executed copy) and write the site into ``out``.

    ``badge(name)``: the notebook's Colab and Kaggle badges (course.py's), for the index's links.
    Returns ``(index.html, failures)``: a lesson that fails to run is named in ``failures`` and
    left out of the site, so a broken lesson never publishes stale pages.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    install_libraries(out)
    paths = list(paths or notebook_paths())
    rows, failures = [], []
    for i, path in enumerate(paths):
        nb, error = executed_copy(path, smoke=smoke, timeout=timeout)
        if error:
            failures.append(f"{path.name}: {error.strip().splitlines()[-1] if error.strip() else error}")
            continue
        stem, nb = path.stem, with_web_links(nb, slug, ref)
        export_page(nb, out / f"{stem}.html", _nav(paths, i), path.parent)
        export_deck(nb, out / f"{stem}.slides.html", source_dir=path.parent)
        run_it = " ".join(f'<a href="{html.escape(url)}">{label.removeprefix("Open In ")}</a>'
                          for label, url in BADGE.findall(badge(path.name)))
        rows.append(f'<tr><td>{stem[:2]}</td><td><a href="{stem}.html">'
                    f'{html.escape(lesson_title(nb))}</a></td><td><a href="{stem}.slides.html">'
                    f'deck</a></td><td>{run_it}</td></tr>')
    gallery = ROOT / "assets" / "gallery.png"
    shown = ""
    if gallery.exists():
        shutil.copyfile(gallery, out / "gallery.png")
        shown = ('<p><img src="gallery.png" alt="Images MiniSD drew for six prompts, on a CPU">'
                 '</p>')
    mode = "smoke mode (small sizes, few steps)" if smoke else "full mode"
    index = INDEX.format(
        title="Diffusion models, hands-on",
        intro=("From using Stable Diffusion pipelines to every part inside them (CLIP, the VAE, the "
               "U-Net, schedulers) and the theory underneath. Each lesson is a notebook: read it "
               "here with its outputs, present it as slides, or run it on Colab or Kaggle."),
        gallery=shown, rows="\n".join(rows),
        note=(f"Every page was executed on MiniSD, the course's small offline model, in {mode}. "
              f"Source: <a href=\"https://github.com/{slug}\">github.com/{slug}</a> ({ref})."))
    (out / "index.html").write_text(index, encoding="utf-8")
    return out / "index.html", failures
