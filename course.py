#!/usr/bin/env python3
"""The course's command line: set-up, tests, headless runs and notebook upkeep (stdlib only).

    python course.py lab        install what the lessons need, then open JupyterLab on notebooks/
    python course.py test       install what the tests need, then run the whole test suite
    python course.py execute    run every notebook top to bottom into build/executed/, with a time table
    python course.py stamp      rewrite every notebook's Colab and Kaggle badges and bootstrap cell
                                from REPO_SLUG and REF (--slug owner/name --ref v1.0 changes them)
    python course.py slides     export notebooks as reveal.js decks that work offline, into build/slides/
    python course.py site       the course as a static website in build/site/: every lesson executed
                                on MiniSD as a page and a deck, and an index (opens offline)
    python course.py gallery    draw assets/gallery.png, the README's sample of MiniSD images
    python course.py bench      run the benchmarks (notebook times and memory, MiniSD and SD 1.5
                                speed) and rewrite bench/REPORT.md
    python course.py standin    write random stand-ins for the Hub repositories the lessons read
                                (SD 1.5 and the rest) into a local Hugging Face cache, for offline runs
    python course.py gpu-check  on a CUDA GPU with no network: every lesson in full mode on SD 1.5's
                                track (full-size stand-in) and on MiniSD in fp16, time and peak GPU
                                memory per lesson into bench/REPORT.md
    python course.py constraints   rewrite constraints.txt from the course's own requirements, in a
                                clean virtual environment (--upgrade: the newest versions they admit)
    python course.py pin-revisions   where the Hugging Face Hub is reachable: record the current
                                commit of every Hub repository a lesson reads, so lessons load those
"""
import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tools.layout import BUILD, CURRICULUM, NOTEBOOKS, ROOT, notebook_paths  # noqa: F401 (for tests)

# The one place that names the course's GitHub repository and the branch or tag the notebooks
# belong to: badges and bootstrap cells come from them (`python course.py stamp --slug --ref`).
REPO_SLUG = "diffusion-course/diffusion-models-course"
REF = "main"
TORCH = "torch==2.13.0"  # the PyTorch the tests ran with, for a machine that has none
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def bootstrap_cell(slug: str = None, ref: str = None) -> str:
    """The first code cell of every lesson. On Colab and Kaggle it fetches the course at ``ref``
    (the version the notebook belongs to) and installs what the runtime lacks; it is safe to run
    again. Elsewhere it only makes ``utils`` importable."""
    slug, ref = slug or REPO_SLUG, ref or REF
    return f'''# Setup: make the course's `utils` importable. On Colab or Kaggle, fetch the course (the version
# this notebook belongs to) and install what the runtime lacks. Running it again is safe.
import os, shutil, subprocess, sys
COURSE, REF = "https://github.com/{slug}", "{ref}"
HOME = ("/content" if "google.colab" in sys.modules else
        "/kaggle/working" if "KAGGLE_KERNEL_RUN_TYPE" in os.environ else None)
if HOME and not os.path.isfile(f"{{HOME}}/course/course.py"):
    shutil.rmtree(f"{{HOME}}/course.partial", ignore_errors=True)  # an interrupted earlier try
    got = subprocess.run(["git", "clone", "-q", "--depth", "1", "-b", REF, COURSE,
                          f"{{HOME}}/course.partial"], capture_output=True, text=True,
                         env={{**os.environ, "GIT_TERMINAL_PROMPT": "0"}})  # never ask for a password
    if got.returncode:
        raise RuntimeError(
            f"Could not fetch the course from {{COURSE}} at {{REF!r}}: {{got.stderr.strip()}}\\n"
            "This notebook was stamped for that repository. If it does not exist (yet) or is "
            "private, open the notebook from where the course is published, or set REPO_SLUG in "
            "course.py and run `python course.py stamp`. On Kaggle, switch Internet on in the "
            "notebook's settings.")
    os.rename(f"{{HOME}}/course.partial", f"{{HOME}}/course")
if HOME:
    sys.path.insert(0, f"{{HOME}}/course")
    from tools import bootstrap
    bootstrap.install(f"{{HOME}}/course")  # until it finishes once; says when to restart
    bootstrap.kaggle_token()
for root in (os.getcwd(), os.path.dirname(os.getcwd())):
    if os.path.isfile(os.path.join(root, "utils", "__init__.py")):
        sys.path.insert(0, root)
        break
from utils import SETTINGS, describe_hardware
print(describe_hardware(), "|", SETTINGS)'''


BOOTSTRAP = bootstrap_cell()


def badge(notebook_name: str, slug: str = None, ref: str = None) -> str:
    """The Open-in-Colab and Open-in-Kaggle badges for one notebook, as one line of markdown."""
    source = f"github.com/{slug or REPO_SLUG}/blob/{ref or REF}/notebooks/{notebook_name}"
    colab = f"https://colab.research.google.com/{source.replace('github.com/', 'github/', 1)}"
    kaggle = f"https://kaggle.com/kernels/welcome?src=https://{source}"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
            f"[![Open In Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({kaggle})")


def _pip(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "pip", "install", "-q", *args])


def torch_plan() -> tuple[list[list[str]], str]:
    """For a machine with no PyTorch: the pip arguments to try in order, and why this build."""
    nvidia = shutil.which("nvidia-smi") or Path("/proc/driver/nvidia/version").exists()
    if sys.platform == "linux" and not nvidia:
        return ([[TORCH, "--index-url", TORCH_CPU_INDEX], [TORCH]],
                f"No PyTorch here and no NVIDIA GPU (no NVIDIA driver found): installing the CPU "
                f"build of {TORCH} (about 190 MB) from {TORCH_CPU_INDEX}. PyPI's Linux build bundles "
                f"CUDA (several GB). For that one, run `pip install {TORCH}` first.")
    if sys.platform == "linux":
        return ([[TORCH]], f"No PyTorch here; an NVIDIA GPU was found: installing {TORCH} from PyPI, "
                           "the CUDA build (several GB, once).")
    gpu = "it uses the Apple GPU (MPS)" if sys.platform == "darwin" else "it runs on the CPU"
    return ([[TORCH]], f"No PyTorch here: installing {TORCH} from PyPI ({platform.system()}: {gpu}).")


def install(test: bool) -> None:
    """Install PyTorch (only if missing, so an existing CUDA build stays), then the requirements,
    unless an earlier run installed the same files with this Python (a marker in build/)."""
    from tools import bootstrap  # standard library only: safe before installing
    from tools.standin import BPE_WHEEL, WHEELS

    if bootstrap.installed_version("torch") is None:
        attempts, why = torch_plan()
        print(why, flush=True)
        for args in attempts:
            if _pip(*args) == 0:
                break
            print(f"That failed; trying the next source: pip install {' '.join(args)}", flush=True)
        else:
            raise SystemExit(f"Could not install {TORCH}: see pip's messages above.")
    files = ["requirements.txt"] + (["requirements-test.txt"] if test else [])
    # the test suite installs the exact versions it last passed with
    bootstrap.install(ROOT, files, constraints="constraints.txt" if test else None,
                      restart_hint="run the command again")
    if test and not list(WHEELS.glob("open_clip_torch-*.whl")):  # for the SD 1.5 stand-in
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", BPE_WHEEL,
                        "-d", str(WHEELS)], check=True)


def cmd_lab(args) -> int:
    install(test=False)
    options = list(args.lab_args)
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in options:
        # Containers and cloud machines often give a root shell; JupyterLab refuses it unless told.
        print("Running as root: starting JupyterLab with --allow-root.", flush=True)
        options.append("--allow-root")
    return subprocess.call([sys.executable, "-m", "jupyter", "lab", str(NOTEBOOKS), *options])


def cmd_test(args) -> int:
    install(test=True)
    # Every tier: this -m "" replaces pytest.ini's fast-tier selection, and a -m given here wins.
    every_tier = ["-m", "", "--durations=15"]
    return subprocess.call([sys.executable, "-m", "pytest", *every_tier, *args.pytest_args], cwd=ROOT)


def cmd_execute(args) -> int:
    """Execute notebooks headless (full mode unless --smoke), keep the executed copies, time them."""
    sys.path.insert(0, str(ROOT))
    from tools.notebooks import execute_notebook

    out_dir = BUILD / ("executed-smoke" if args.smoke else "executed")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [Path(p).resolve() for p in args.notebooks] or notebook_paths()
    rows, failed = [], False
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        result = execute_notebook(path, out_dir / path.name, smoke=args.smoke, timeout=args.timeout)
        failed |= result["error"] is not None
        rows.append(result)
        if result["error"]:
            print(f"  FAILED: {result['error']}")
    print(f"\n{'notebook':<36}{'seconds':>9}{'peak RSS MB':>13}  result")
    for r in rows:
        print(f"{r['name']:<36}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13.0f}  "
              f"{'failed' if r['error'] else 'ok'}")
    print(f"{'total':<36}{sum(r['seconds'] for r in rows):>9.1f}")
    print(f"executed copies with outputs: {out_dir.relative_to(ROOT)}/")
    return 1 if failed else 0


def stamp(nb: dict, name: str, slug: str = None, ref: str = None) -> dict:
    """Put the badges under the title line of the first cell and the bootstrap in the first code cell."""
    title = nb["cells"][0]
    lines = [line for line in "".join(title["source"]).split("\n") if "colab-badge.svg" not in line]
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
    title["source"] = _lines("\n".join(lines[:at] + [badge(name, slug, ref)] + lines[at:]))
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["source"] = _lines(bootstrap_cell(slug, ref))
    return nb


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)  # how Jupyter stores a cell's source


def cmd_stamp(args) -> int:
    """Re-stamp every notebook; with --slug or --ref, first record them in this file."""
    slug, ref = args.slug or REPO_SLUG, args.ref or REF
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", slug):
        print(f"--slug {slug!r} is not a GitHub repository name such as 'owner/name'.")
        return 2
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", ref) or ref.startswith(("-", "/")):
        print(f"--ref {ref!r} is not a branch or tag name such as 'main' or 'v1.0'.")
        return 2
    if (slug, ref) != (REPO_SLUG, REF):
        me = Path(__file__)
        text = me.read_text()
        text = text.replace(f'REPO_SLUG = "{REPO_SLUG}"', f'REPO_SLUG = "{slug}"', 1)
        me.write_text(text.replace(f'REF = "{REF}"', f'REF = "{ref}"', 1))
        print(f"course.py now names https://github.com/{slug} at {ref!r}")
    for path in notebook_paths():
        nb = json.loads(path.read_text())
        before = json.dumps(nb)
        stamp(nb, path.name, slug, ref)
        if json.dumps(nb) != before:
            path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
            print(f"stamped {path.name}")
    return 0


def cmd_slides(args) -> int:
    """Export notebooks as reveal.js decks that need no internet (executed first if need be)."""
    sys.path.insert(0, str(ROOT))
    from tools.slides import Browser

    paths = [Path(p).resolve() for p in args.notebooks] or notebook_paths()
    with contextlib.ExitStack() as stack:
        browser = stack.enter_context(Browser(offline=True)) if args.fit else None
        failed = _export_decks(paths, args, browser)
    print("Open a deck in a browser, no internet needed: F full screen, S speaker notes, Esc overview. "
          "Copy the whole build/slides/ folder to present elsewhere.")
    return 1 if failed else 0


def _export_decks(paths: list[Path], args, browser) -> bool:
    """``cmd_slides``' work: a deck per notebook, measured when ``browser`` is given; True if any
    notebook failed or any slide was too tall."""
    from tools.slides import (executed_copy, export_deck, pdf_handout, slide_count, slide_sizes,
                              too_tall, with_web_links)

    failed = False
    for path in paths:
        nb, error = executed_copy(path, smoke=args.smoke, timeout=args.timeout)
        if error:
            print(f"  FAILED, no deck for {path.name}: {error}")
            failed = True
            continue
        deck = export_deck(with_web_links(nb, REPO_SLUG, REF),
                           BUILD / "slides" / path.name.replace(".ipynb", ".slides.html"),
                           source_dir=path.parent)
        line = f"{deck.relative_to(ROOT)}: {slide_count(nb)} slides"
        if args.pdf:
            line += f", handout {pdf_handout(deck).relative_to(ROOT)}"
        if browser:
            tall = too_tall(slide_sizes(deck, browser))
            failed = failed or bool(tall)
            line += "".join(f"\n  {problem}" for problem in tall) or ", every slide fits 1280x720"
        print(line, flush=True)
    return failed


def cmd_site(args) -> int:
    """Build the course as a static website: every lesson executed on MiniSD, as a page and a deck."""
    sys.path.insert(0, str(ROOT))
    from tools.site import build_site

    out = Path(args.out) if args.out else BUILD / "site"
    os.environ["COURSE_MODEL"] = "mini"  # the kernels inherit it: the same pages on any machine
    index, failures = build_site(out, smoke=args.smoke, slug=REPO_SLUG, ref=REF, badge=badge,
                                 timeout=args.timeout)
    for failure in failures:
        print(f"  FAILED, left out of the site: {failure}")
    print(f"Wrote {os.path.relpath(index, Path.cwd())}: open it in a browser (no internet needed), "
          f"or copy the whole {os.path.relpath(out, Path.cwd())}/ folder to any static host.")
    return 1 if failures else 0


GALLERY_PROMPTS = ["a red seven", "a thick blue two", "a small green zero", "a thin orange four",
                   "a large pink nine", "a cyan 3"]
GALLERY_SEEDS = [0, 1, 2, 3, 4, 5]


def cmd_gallery(args) -> int:
    """Draw the README's grid of MiniSD images: fixed prompts and seeds, 25 steps."""
    sys.path.insert(0, str(ROOT))
    import torch
    from PIL import Image, ImageDraw
    from utils import load_pipeline
    from utils.track import MINISD_PATH

    out = Path(args.out) if args.out else ROOT / "assets" / "gallery.png"
    if not (MINISD_PATH / "model_index.json").exists():
        # load_pipeline's random stand-in draws noise: never let that become the committed gallery.
        out = out if args.out else BUILD / "gallery.png"
        print(f"MiniSD is not in {os.path.relpath(MINISD_PATH, ROOT)}/ yet, so these images are noise; "
              f"writing {os.path.relpath(out, ROOT)}.")
    pipe = load_pipeline("mini", device="cpu")  # the CPU: the same picture on every machine
    pipe.set_progress_bar_config(disable=True)
    cell, label_w, pad = 96, 190, 4
    how = f"seeds {GALLERY_SEEDS[0]}-{GALLERY_SEEDS[-1]}, {args.steps} steps"
    caption = f"Generated by MiniSD with `python course.py gallery` ({how})"
    width = label_w + len(GALLERY_SEEDS) * (cell + pad)
    grid = Image.new("RGB", (width, len(GALLERY_PROMPTS) * (cell + pad) + 28), "white")
    draw = ImageDraw.Draw(grid)
    for row, prompt in enumerate(GALLERY_PROMPTS):
        generators = [torch.Generator().manual_seed(seed) for seed in GALLERY_SEEDS]
        images = pipe(prompt, num_inference_steps=args.steps, num_images_per_prompt=len(GALLERY_SEEDS),
                      generator=generators).images
        print(f"  {prompt!r}: {len(images)} images", flush=True)
        y = row * (cell + pad)
        draw.text((6, y + cell // 2), prompt, fill="black", font=_font(16), anchor="lm")
        for col, image in enumerate(images):  # nearest-neighbour: MiniSD's 32x32 pixels stay crisp
            grid.paste(image.resize((cell, cell), Image.NEAREST), (label_w + col * (cell + pad), y))
    draw.text((6, grid.height - 14), f"Generated by MiniSD with: python course.py gallery ({how})",
              fill="dimgray", font=_font(13), anchor="lm")
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out, optimize=True)
    print(f"wrote {os.path.relpath(out, ROOT)} ({out.stat().st_size / 1024:.0f} KB). For the README:")
    print(f"![MiniSD samples](assets/gallery.png)\n*{caption}.*")
    return 0


def cmd_bench(args) -> int:
    """Run bench/run.py: the benchmark suite, rewriting bench/REPORT.md."""
    return subprocess.call([sys.executable, str(ROOT / "bench" / "run.py"), *args.bench_args], cwd=ROOT)


def cmd_standin(args) -> int:
    sys.path.insert(0, str(ROOT))
    from tools.standin import main

    return main(args.standin_args)


def cmd_gpu_check(args) -> int:
    sys.path.insert(0, str(ROOT))
    from tools.gpu_check import main

    return main(args.standin_args, lessons=notebook_paths())


def cmd_constraints(args) -> int:
    from tools.constraints import main

    return main(args.standin_args)


def cmd_pin_revisions(args) -> int:
    sys.path.insert(0, str(ROOT))
    from utils import hub_reachable
    from utils.hub import HUB_REPOS, REVISIONS, pin_revisions, revision

    if not hub_reachable():
        print("The Hugging Face Hub cannot be reached from here, so no commit can be read. Run "
              "`python course.py pin-revisions` on a machine with internet, and commit "
              f"{os.path.relpath(REVISIONS, ROOT)}.")
        return 1
    before = {repo: revision(repo) for repo in HUB_REPOS}
    for repo, sha in pin_revisions().items():
        change = "unchanged" if before[repo] == sha else f"was {before[repo] or 'not pinned'}"
        print(f"{repo}: {sha} ({change})")
    print(f"wrote {os.path.relpath(REVISIONS, ROOT)}; rebuild stand-ins with "
          "`python course.py standin --force`.")
    return 0


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 has one fixed-size default font
        return ImageFont.load_default()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lab", help="install and open JupyterLab (other options go to JupyterLab: "
                   "--port, --no-browser, --ip ...)").set_defaults(func=cmd_lab)
    test = sub.add_parser("test", help="install and run the test suite (other options go to pytest)")
    test.set_defaults(func=cmd_test)
    run = sub.add_parser("execute", help="run notebooks headless into build/")
    run.add_argument("notebooks", nargs="*", help="default: every notebook, in order")
    run.add_argument("--smoke", action="store_true", help="COURSE_SMOKE=1: tiny sizes")
    run.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    run.set_defaults(func=cmd_execute)
    stamp_cmd = sub.add_parser("stamp", help="re-stamp badges and bootstrap cells (--slug, --ref: "
                               "publish the course under another repository or tag)")
    stamp_cmd.add_argument("--slug", help=f"GitHub repository 'owner/name' (now {REPO_SLUG})")
    stamp_cmd.add_argument("--ref", help=f"branch or tag the notebooks belong to (now {REF})")
    stamp_cmd.set_defaults(func=cmd_stamp)
    slides = sub.add_parser("slides", help="export notebooks as offline reveal.js decks into build/slides/")
    slides.add_argument("notebooks", nargs="*", help="default: every notebook, in order")
    slides.add_argument("--smoke", action="store_true", help="execute with COURSE_SMOKE=1 (tiny sizes)")
    slides.add_argument("--pdf", action="store_true", help="also print each deck to PDF (needs Chromium)")
    slides.add_argument("--fit", action="store_true",
                        help="measure every slide with its fragments shown (needs Chromium) and fail "
                             "on any taller than the 1280x720 screen")
    slides.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    slides.set_defaults(func=cmd_slides)
    site = sub.add_parser("site", help="build the course as a static website into build/site/")
    site.add_argument("--smoke", action="store_true", help="execute with COURSE_SMOKE=1 (tiny sizes)")
    site.add_argument("--out", help="the site's folder (default build/site/)")
    site.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    site.set_defaults(func=cmd_site)
    gallery = sub.add_parser("gallery", help="draw assets/gallery.png with MiniSD")
    gallery.add_argument("--steps", type=int, default=25, help="denoising steps (default 25)")
    gallery.add_argument("--out", help="where to write the PNG (default assets/gallery.png)")
    gallery.set_defaults(func=cmd_gallery)
    bench = sub.add_parser("bench", help="run the benchmarks and rewrite bench/REPORT.md "
                           "(options go to bench/run.py: --quick, --rerun-scripts)")
    bench.set_defaults(func=cmd_bench)
    standin = sub.add_parser("standin", add_help=False, help="write stand-ins of the lessons' Hub repositories "
                             "into a local cache (options go to tools/standin.py: --size, --hf-home)")
    standin.set_defaults(func=cmd_standin)
    gpu = sub.add_parser("gpu-check", add_help=False, help="every lesson on a CUDA GPU, offline, "
                         "with time and peak memory into bench/REPORT.md (options: --help)")
    gpu.set_defaults(func=cmd_gpu_check)
    sub.add_parser("constraints", add_help=False, help="rewrite constraints.txt from the course's "
                   "requirements in a clean virtual environment (options: --help, --upgrade)"
                   ).set_defaults(func=cmd_constraints)
    sub.add_parser("pin-revisions", help="record the current commit of every Hub repository a "
                   "lesson reads (needs the Hub)").set_defaults(func=cmd_pin_revisions)
    args, extra = parser.parse_known_args(argv)
    args.bench_args = args.standin_args = args.lab_args = extra
    if extra and args.command not in ("lab", "test", "bench", "standin", "gpu-check", "constraints"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pytest_args = extra
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
