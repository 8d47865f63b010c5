"""Command line: ``python -m utils.minisd train --out assets/minisd`` and ``python -m utils.minisd concepts``
(see ``--help``)."""
import argparse
import tempfile
from pathlib import Path

from utils.minisd.models import FULL, SMOKE
from utils.minisd.train import train
from utils.record import command_line


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m utils.minisd",
                                     description="Train MiniSD, a tiny Stable Diffusion, from scratch.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train every stage and export the pipeline folder")
    p.add_argument("--out", type=Path, default=None,
                   help="pipeline folder to write (default assets/minisd; a temp folder with --smoke)")
    p.add_argument("--work", type=Path, default=None,
                   help="checkpoints and finished stages (default build/minisd-train, or beside a "
                        "smoke run's --out)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: the whole recipe in seconds")
    p.add_argument("--resume", action="store_true", help="continue the run in --work")
    p.add_argument("--overwrite", action="store_true", help="replace --out and restart --work")
    p.add_argument("--seed", type=int, default=0)
    for stage in ("clip", "vae", "decoder", "unet"):
        p.add_argument(f"--{stage}-minutes", type=float, default=None,
                       help=f"wall-time cap on the {stage} stage (default: none, all its steps)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    c = sub.add_parser("concepts", help="train lesson 01's textual-inversion token and Dreambooth "
                                        "copy on the shipped MiniSD")
    c.add_argument("--out", type=Path, default=None,
                   help="folder to write (default assets/minisd_concepts; a temp folder with --smoke)")
    c.add_argument("--base", type=Path, default=None, help="MiniSD folder (default assets/minisd)")
    c.add_argument("--smoke", action="store_true", help="a few steps: checks the code in seconds")
    c.add_argument("--overwrite", action="store_true", help="replace --out")
    c.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.command == "concepts":
        return _concepts(args, argv)
    minutes = {s: getattr(args, f"{s}_minutes") for s in ("clip", "vae", "decoder", "unet")}
    minutes = {s: m for s, m in minutes.items() if m is not None}
    for stage, m in minutes.items():
        if m <= 0:
            parser.error(f"--{stage}-minutes must be > 0, got {m}.")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    if args.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="minisd-smoke-"))
        out = args.out or tmp / "minisd"
        work = args.work or out.parent / f"{out.name}-train"
    else:
        out = args.out or Path("assets/minisd")
        work = args.work or Path("build/minisd-train")
    command = command_line("python -m utils.minisd", argv)
    out = train(out, work, SMOKE if args.smoke else FULL, seed=args.seed, resume=args.resume,
                overwrite=args.overwrite, minutes=minutes, command=command)
    print(f"MiniSD pipeline written to {out}")
    return out


def _concepts(args, argv) -> Path:
    from utils.minisd import MINISD_PATH
    from utils.minisd.concepts import CONCEPTS_PATH, make_concepts

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    out = args.out or (Path(tempfile.mkdtemp(prefix="concepts-smoke-")) / "concepts" if args.smoke
                       else CONCEPTS_PATH)
    command = command_line("python -m utils.minisd", argv)
    out = make_concepts(out, args.base or MINISD_PATH, smoke=args.smoke, overwrite=args.overwrite,
                        command=command)
    print(f"MiniSD concepts written to {out}")
    return out


if __name__ == "__main__":
    main()
