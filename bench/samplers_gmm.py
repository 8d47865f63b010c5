"""Benchmark 1 of lesson 07: samplers on a 2-D Gaussian mixture whose score is exact.

    python bench/samplers_gmm.py              # 10k samples, writes bench/samplers_gmm.md (~8 min)
    python bench/samplers_gmm.py --n 1000 --nfe 4 16 --out /tmp/gmm.md      # a quick check

With the exact score, the only error left is the sampler's own (discretisation); the starting
points are exact samples of the mixture noised to sigma_max, so the start adds none. Each
sampler's final samples are compared with as many exact samples by the energy distance; two
independent exact samples of the same size give the noise floor, below which no sampler can be
told from the truth. Nothing in the report is typed by hand: every number is measured by the run.
"""
import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench.sampler_tables import markdown_table  # noqa: E402
from utils import describe_hardware  # noqa: E402
from utils.record import command_line  # noqa: E402
from utils.gmm import GaussianMixture, energy_distance, mean_distance  # noqa: E402
from utils.sampler_report import findings  # noqa: E402
from utils.samplers import distance_vs_nfe, dpm_solver_pp, karras_sigmas, run  # noqa: E402

SIGMA_MAX = 20.0
CONVERGED_STEPS = 500  # DPM-Solver++ with this many steps stands in for the exact ODE solution


def measure(n: int, nfes: list[int], seed: int = 0, floor_repeats: int = 5, log=print):
    """Returns (rows from distance_vs_nfe, floor values, distance of the converged ODE solution)."""
    gmm = GaussianMixture.default()
    generator = torch.Generator().manual_seed(seed)
    reference = gmm.sample(n, generator=generator)
    ref_self = mean_distance(reference)
    floors = [energy_distance(gmm.sample(n, generator=generator), reference, ref_self)
              for _ in range(floor_repeats)]
    log(f"noise floor (two exact samples of {n}): mean {sum(floors) / len(floors):.2e}, "
        f"range {min(floors):.2e}-{max(floors):.2e}")
    x_T = gmm.sample(n, sigma=SIGMA_MAX, generator=generator)  # exact samples of p_sigma_max
    solution, _ = run(dpm_solver_pp, gmm, karras_sigmas(CONVERGED_STEPS), x_T)
    converged = energy_distance(solution, reference, ref_self)
    log(f"converged ODE solution (DPM-Solver++, {CONVERGED_STEPS} steps): {converged:.2e}")
    rows = distance_vs_nfe(gmm, x_T, lambda x: energy_distance(x, reference, ref_self), nfes,
                           on_result=lambda r: log(f"  {r['sampler']:<20} NFE {r['nfe']:>3}: "
                                                   f"{r['distance']:.2e} ({r['seconds']:.1f} s)"))
    return rows, floors, converged


def plot(rows, floors, converged, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["sampler"] for r in rows):
        mine = [r for r in rows if r["sampler"] == name]
        ax.plot([r["nfe"] for r in mine], [r["distance"] for r in mine], "o-", label=name)
    ax.axhspan(min(floors), max(floors), color="gray", alpha=0.3, label="noise floor")
    ax.axhline(converged, color="black", ls="--", lw=1, label="converged ODE solution")
    ax.set(xscale="log", yscale="log", xlabel="model evaluations (NFE)",
           ylabel="energy distance", title="2-D Gaussian mixture, exact score")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="samples per distribution")
    parser.add_argument("--nfe", type=int, nargs="+", default=[4, 6, 8, 12, 16, 25, 50, 100])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "samplers_gmm.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "build" / "bench" / "samplers_gmm.png")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows, floors, converged = measure(args.n, args.nfe, args.seed)
    seconds = time.perf_counter() - start
    plot(rows, floors, converged, args.plot)
    floor = sum(floors) / len(floors)
    command = command_line("python bench/samplers_gmm.py", argv)
    now = datetime.datetime.now(datetime.timezone.utc)
    shown_plot = args.plot.relative_to(ROOT) if args.plot.is_relative_to(ROOT) else args.plot
    report = [
        "# Samplers on a 2-D Gaussian mixture with exact score (lesson 07, benchmark 1)",
        "",
        f"Written by `{command.strip()}` on {now:%Y-%m-%d %H:%M} UTC.",
        f"Machine: {describe_hardware()}; Python {platform.python_version()}, "
        f"diffusers {__import__('diffusers').__version__}. Run time {seconds:.0f} s.",
        "",
        f"Energy distance between {args.n:,} samples of each sampler and {args.n:,} exact "
        "samples (lower is better), versus the number of model evaluations (NFE). The mixture "
        "(`GaussianMixture.default()`: six thin blobs of unequal weight on a ring, one round "
        f"blob inside) is noised to sigma_max = {SIGMA_MAX:g}; every sampler starts from the "
        "same exact samples of that noised mixture and follows the Karras (rho = 7) schedule "
        "down to sigma_min = 0.02, then 0. Heun spends 2 NFE per step but the last, so its "
        "actual NFE is in brackets where it differs from the budget.",
        "",
        f"The noise floor is the mean distance between two independent exact samples of "
        f"{args.n:,} ({len(floors)} pairs: {min(floors):.3g} to {max(floors):.3g}). Every "
        "sampler converges to the exact ODE solution of the same starting points, whose "
        f"distance is {converged:.3g} (DPM-Solver++ with {CONVERGED_STEPS} steps): one more "
        "draw of the floor, and the value each row tends to as NFE grows.",
        "",
        markdown_table(rows, floor),
        "",
        "## What the numbers say (computed from the table)",
        "",
        *[f"- {line}" for line in findings(rows, floor)],
        "",
        f"Plot (log-log): `{shown_plot}` (not committed; the command draws it). "
        "Lesson 07 draws the same plot.",
        "",
    ]
    args.out.write_text("\n".join(report))
    print(f"wrote {args.out} and {args.plot} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
