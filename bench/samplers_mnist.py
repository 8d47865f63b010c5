"""Benchmark 2 of lesson 07: the same samplers on the MNIST denoiser of ``utils.score``.

    python bench/samplers_mnist.py --threads 2   # assets/mnist_denoiser -> bench/samplers_mnist.md
    python bench/samplers_mnist.py --untrained --n 64 --nfe 4 8 --out /tmp/m.md  # checks the script

The default run (500 digits, 7 samplers, NFE 4 to 25: about 490 network passes on 500 digits) takes
about 30 CPU-minutes with the shipped U-Net; it prints its own estimate before it starts.

Each sampler draws ``--n`` digits from the same starting noise ``sigma_max * z`` at each NFE budget.
They are scored by the Frechet distance between the project's digit classifier's features
(``utils.metrics``: trained on real MNIST train digits only) of the generated digits and of the
held-out real test digits. The noise floor is the same distance between real train digits and those
test digits, with the same count. Unlike benchmark 1 the score is learned, so the sampler's error
and the network's error add up; the floor is what a perfect sampler *and* network would reach.
"""
import argparse
import datetime
import functools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench.sampler_tables import markdown_table  # noqa: E402
from utils import describe_hardware  # noqa: E402
from utils.record import command_line  # noqa: E402
from utils.metrics import classifier_features, frechet_distance, load_classifier  # noqa: E402
from utils.sampler_report import findings  # noqa: E402
from utils.samplers import SAMPLERS, distance_vs_nfe, heun, karras_sigmas, steps_for_nfe  # noqa: E402
from utils.score import (DENOISER_PATH, SIGMA_MAX, SIGMA_MIN, Denoiser, build_unet,  # noqa: E402
                         load_mnist_denoiser, mnist_tensor)


def digit_features(x: torch.Tensor, classifier) -> np.ndarray:
    """Classifier features (N, D) of digits (N, 1, 32, 32) in [-1, 1]."""
    images = ((x.clamp(-1, 1) + 1) / 2).expand(-1, 3, -1, -1)  # utils.metrics reads RGB in [0, 1]
    return classifier_features(images, classifier)


def chunked(model, size: int):
    """The model applied in chunks of ``size`` images (one NFE per call, whatever the chunking)."""
    return lambda x, sigma: torch.cat([model(part, sigma) for part in x.split(size)])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500,
                        help="digits per sampler and budget (default 500, the offline test split)")
    parser.add_argument("--nfe", type=int, nargs="+", default=[4, 6, 8, 12, 16, 25])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--denoiser", type=Path, default=DENOISER_PATH)
    parser.add_argument("--untrained", action="store_true",
                        help="an untrained tiny denoiser: checks the script; numbers mean nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "samplers_mnist.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.untrained:
        torch.manual_seed(args.seed)
        denoiser = Denoiser(build_unet((8, 16, 16))).eval()
        which = "an UNTRAINED tiny denoiser (the numbers mean nothing)"
    else:
        shown = args.denoiser.resolve()
        shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
        denoiser, which = load_mnist_denoiser(args.denoiser), f"`{shown}`"
        record = args.denoiser / "TRAINING.json"
        if record.is_file():
            facts = json.loads(record.read_text())
            which += f", trained {facts.get('steps')} steps by `{facts.get('command')}`"
    classifier = load_classifier()
    x_train, _ = mnist_tensor("train")
    x_test, _ = mnist_tensor("test")  # the offline split is sorted by class: shuffle it
    x_test = x_test[torch.randperm(len(x_test), generator=torch.Generator().manual_seed(args.seed))]
    n = min(args.n, len(x_test))
    if n < args.n:
        print(f"only {len(x_test)} test digits: using n = {n}")
    test_features = digit_features(x_test[:n], classifier)
    pick = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed))[:n]
    floor = frechet_distance(digit_features(x_train[pick], classifier), test_features)
    print(f"noise floor (real train vs real test, {n} digits each): {floor:.3g}")

    total = sum(2 * steps_for_nfe(s, b) - 1 if s is heun else b
                for s in SAMPLERS.values() for b in args.nfe)
    start = time.perf_counter()
    with torch.no_grad():
        denoiser(torch.randn(min(n, 64), 1, 32, 32), 1.0)
    per_eval = (time.perf_counter() - start) * n / min(n, 64)
    print(f"about {total} model evaluations on {n} digits: roughly {total * per_eval / 60:.0f} min")

    generator = torch.Generator().manual_seed(args.seed + 1)
    x_T = SIGMA_MAX * torch.randn(n, 1, 32, 32, generator=generator)
    schedule = functools.partial(karras_sigmas, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)
    start = time.perf_counter()
    rows = distance_vs_nfe(
        chunked(denoiser, 250), x_T,
        lambda x: frechet_distance(digit_features(x, classifier), test_features), args.nfe,
        schedule=schedule,
        on_result=lambda r: print(f"  {r['sampler']:<20} NFE {r['nfe']:>3}: {r['distance']:.3g} "
                                  f"({r['seconds']:.0f} s)", flush=True))
    seconds = time.perf_counter() - start
    now = datetime.datetime.now(datetime.timezone.utc)
    command = command_line("python bench/samplers_mnist.py", argv)
    report = [
        "# Samplers on the MNIST denoiser (lesson 07, benchmark 2)",
        "",
        f"Written by `{command.strip()}` on {now:%Y-%m-%d %H:%M} UTC.",
        f"Machine: {describe_hardware()}; Python {platform.python_version()}, "
        f"diffusers {__import__('diffusers').__version__}. Sampling time {seconds / 60:.1f} min.",
        "",
        f"Denoiser: {which}. Frechet distance on the digit classifier's "
        f"{test_features.shape[1]} features (`utils.metrics`) between {n} generated digits and "
        f"the {n} held-out test digits (lower is better), versus model evaluations (NFE). Every "
        f"sampler starts from the same noise `{SIGMA_MAX:g} * z` and follows the Karras "
        f"(rho = 7) schedule from {SIGMA_MAX:g} to {SIGMA_MIN:g}, then 0. Heun's actual NFE is "
        "in brackets where it differs from the budget. Noise floor: "
        f"{n} real train digits against the same test digits.",
        "",
        markdown_table(rows, floor),
        "",
        "## What the numbers say (computed from the table)",
        "",
        *[f"- {line}" for line in findings(rows, floor)],
        "",
    ]
    args.out.write_text("\n".join(report))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
