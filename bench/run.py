"""Run the course's benchmarks and rewrite bench/REPORT.md (figures also in bench/report.json).

    python course.py bench                # everything this machine can run (about 45 min on 2 cores)
    python course.py bench --quick        # smoke-mode notebooks only, no full-mode runs
    python course.py bench --rerun-scripts   # also re-measure MiniSD quality and the sampler tables

Sections of the report:
    machine      what it ran on, library versions, the date
    notebooks    wall time and peak memory (RSS) of every lesson, smoke mode and full CPU mode
    minisd       images per second at 25 guided steps (batch 1 and 64); cold start to first image
    sd15         Stable Diffusion 1.5's exact architecture with RANDOM weights (speed and memory do
                 not depend on the weights' values): CPU seconds per U-Net step at 512x512; on a
                 CUDA GPU, seconds per image and peak memory in fp16, plain / attention slicing /
                 model CPU offload
    scripts      the latest MiniSD quality report and sampler tables (bench/*.md), re-measured with
                 --rerun-scripts
Timing figures are medians of repeated runs after a warm-up. Nothing here is a test: a slow shared
machine gives slow figures, and the report says which machine it was.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH = ROOT / "bench"
TARGETS = {"full_total_min": 30.0, "full_peak_gb": 4.0, "smoke_total_min": 10.0}
SCRIPT_REPORTS = [  # (report, the command that rewrites it)
    ("minisd_report.md", [sys.executable, "bench/minisd_quality.py"]),
    ("samplers_gmm.md", [sys.executable, "bench/samplers_gmm.py"]),
    ("samplers_mnist.md", [sys.executable, "bench/samplers_mnist.py"]),
]


def machine() -> dict:
    import torch

    from utils.record import versions

    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = names[0].strip() if names else cpu
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        ram_gb = round(pages / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        ram_gb = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu,
            "logical_cores": os.cpu_count(), "ram_gb": ram_gb, "gpu": gpu,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()], **versions()}


def notebooks(smoke: bool) -> list[dict]:
    from tools.layout import notebook_paths
    from tools.notebooks import execute_notebook

    out_dir = ROOT / "build" / ("executed-smoke" if smoke else "executed")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in notebook_paths():
        print(f"  {'smoke' if smoke else 'full'}: {path.name} ...", flush=True)
        r = execute_notebook(path, out_dir / path.name, smoke=smoke, timeout=1800)
        rows.append({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()})
    return rows


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pay for allocation and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def minisd() -> dict:
    import torch

    from utils.track import MINISD_PATH, load_pipeline

    if not (MINISD_PATH / "model_index.json").exists():
        return {"skipped": f"no MiniSD in {MINISD_PATH}"}
    pipe = load_pipeline("mini", verbose=False)
    pipe.set_progress_bar_config(disable=True)
    device = pipe.device

    def generate(batch):
        return lambda: pipe(["a red seven"] * batch, num_inference_steps=25, guidance_scale=7.5,
                            generator=torch.Generator("cpu").manual_seed(0), output_type="np")

    one = _median_seconds(generate(1), repeats=5)
    many = _median_seconds(generate(64), repeats=3)
    snippet = ("import torch; from utils import load_pipeline; "
               "pipe = load_pipeline('mini', verbose=False); pipe.set_progress_bar_config(disable=True); "
               "pipe('a red seven', num_inference_steps=25, generator=torch.Generator().manual_seed(0))")
    colds = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, check=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True)
        colds.append(time.perf_counter() - start)
    return {"device": str(device), "torch_threads": torch.get_num_threads(), "steps": 25,
            "guidance": 7.5, "scheduler": type(pipe.scheduler).__name__,
            "batch1_seconds": round(one, 3), "batch1_images_per_s": round(1 / one, 2),
            "batch64_seconds": round(many, 2), "batch64_images_per_s": round(64 / many, 1),
            "cold_start_seconds": round(statistics.median(colds), 2)}


def sd15_unet_step(device: str = "cpu", dtype=None, config: dict | None = None,
                   repeats: int = 3) -> dict:
    """Seconds for one guided U-Net step (batch 2: conditional + unconditional) at 512x512, with
    SD 1.5's exact architecture and random weights. ``config`` replaces the U-Net config (tests
    pass a tiny one to exercise this code quickly)."""
    import resource

    import torch
    from diffusers import UNet2DConditionModel

    from utils.sd15 import UNET_CONFIG

    dtype = dtype or torch.float32
    config = config or UNET_CONFIG
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config).to(device, dtype).eval()
    size = config.get("sample_size", 64)
    latents = torch.randn(2, config.get("in_channels", 4), size, size, device=device, dtype=dtype)
    text = torch.randn(2, 77, config["cross_attention_dim"], device=device, dtype=dtype)
    t = torch.tensor(500, device=device)

    def step():
        with torch.no_grad():
            unet(latents, t, text)
        if device == "cuda":
            torch.cuda.synchronize()

    seconds = _median_seconds(step, repeats)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"device": device, "dtype": str(dtype).replace("torch.", ""),
            "torch_threads": torch.get_num_threads(), "latent_size": size,
            "seconds_per_unet_step": round(seconds, 3),
            "seconds_per_image_25_steps_estimate": round(25 * seconds, 1),
            "peak_rss_growth_gb": round((rss_after - rss_before) / 1024**2, 2)}


def sd15_gpu_pipeline(repeats: int = 2) -> dict:
    """On CUDA: a full SD 1.5 pipeline with random weights, 25 steps at 512x512 in fp16, timed with
    and without attention slicing and model CPU offload, with peak GPU memory."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    from utils.sd15 import SCHEDULER_CONFIG, build_sd15_component

    parts = {name: build_sd15_component(name, empty=False).half()
             for name in ("unet", "vae", "text_encoder")}
    # Prompt embeddings are passed directly, so the tokenizer is never asked to tokenize.
    tokenizer = CLIPTokenizer(vocab={"<|startoftext|>": 0, "<|endoftext|>": 1}, merges=[],
                              model_max_length=77)
    embeds = torch.randn(1, 77, 768, dtype=torch.float16)
    results = {}
    for mode in ("plain", "attention_slicing", "model_cpu_offload"):
        pipe = StableDiffusionPipeline(**parts, tokenizer=tokenizer,
                                       scheduler=PNDMScheduler.from_config(SCHEDULER_CONFIG),
                                       safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        if mode == "model_cpu_offload":
            pipe.to("cpu")  # offload keeps every part on the CPU until its turn on the GPU
            torch.cuda.empty_cache()
            pipe.enable_model_cpu_offload()
        else:
            pipe.to("cuda")
            if mode == "attention_slicing":
                pipe.enable_attention_slicing()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

        def image():
            pipe(prompt_embeds=embeds.cuda(), negative_prompt_embeds=torch.zeros_like(embeds).cuda(),
                 num_inference_steps=25, guidance_scale=7.5, output_type="np")
            torch.cuda.synchronize()

        seconds = _median_seconds(image, repeats)
        results[mode] = {"seconds_per_image": round(seconds, 2),
                         "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2)}
        del pipe
    return results


def script_reports(rerun: bool) -> list[dict]:
    found = []
    for name, command in SCRIPT_REPORTS:
        if rerun:
            print(f"  rerunning {' '.join(command[1:])} ...", flush=True)
            subprocess.run(command, cwd=ROOT, check=True)
        path = BENCH / name
        if path.exists():
            text = path.read_text()
            when = re.search(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d)", text)
            found.append({"report": name, "written": when.group(1) if when else "unknown",
                          "command": " ".join(["python", *command[1:]])})
        else:
            found.append({"report": name, "missing": True,
                          "command": " ".join(["python", *command[1:]])})
    return found


def _mb(x) -> str:
    return "n/a" if x != x else f"{x:,.0f}"  # NaN where the kernel could not report memory


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = ["# Benchmark report", "",
             f"Written by `{r['command']}` on {m['date']} in {r['minutes']:.1f} min.", "",
             "## Machine", "",
             f"- CPU: {m['cpu']}, {m['logical_cores']} logical cores, {m['ram_gb']} GB RAM; "
             f"load average at start {m['load_average_at_start']}",
             f"- GPU: {m['gpu'] or 'none (the GPU figures below were not run)'}",
             f"- Python {m['python']}, torch {m['torch']}, diffusers {m['diffusers']}, "
             f"transformers {m['transformers']}, numpy {m['numpy']}; {m['platform']}", ""]
    nb = r.get("notebooks", {})
    if nb:
        lines += ["## Notebooks", "",
                  "Each lesson executed top to bottom in a fresh kernel (`python course.py execute`); "
                  "peak RSS is the kernel's.", ""]
        modes = [mode for mode in ("smoke", "full") if mode in nb]
        header = "| notebook |" + "".join(f" {mode} s | {mode} peak MB |" for mode in modes)
        lines += [header, "|---|" + "---|---|" * len(modes)]
        names = [row["name"] for row in nb[modes[0]]]
        for name in names:
            cells = []
            for mode in modes:
                row = next((x for x in nb[mode] if x["name"] == name), None)
                if row is None:
                    cells += ["-", "-"]
                else:
                    flag = " (failed)" if row["error"] else ""
                    cells += [f"{row['seconds']:.0f}{flag}", _mb(row["peak_rss_mb"])]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        for mode in modes:
            total = sum(x["seconds"] for x in nb[mode]) / 60
            peak = max((x["peak_rss_mb"] for x in nb[mode] if x["peak_rss_mb"] == x["peak_rss_mb"]),
                       default=float("nan")) / 1024
            if mode == "full":
                target = (f"target: under {TARGETS['full_total_min']:.0f} min in all "
                          f"({'met' if total < TARGETS['full_total_min'] else 'NOT met'}), peak under "
                          f"{TARGETS['full_peak_gb']:.0f} GB "
                          f"({'met' if peak < TARGETS['full_peak_gb'] else 'NOT met'})")
            else:
                target = (f"target: under {TARGETS['smoke_total_min']:.0f} min in all "
                          f"({'met' if total < TARGETS['smoke_total_min'] else 'NOT met'})")
            failed = [x["name"] for x in nb[mode] if x["error"]]
            lines.append(f"- {mode} mode: {total:.1f} min in all, highest peak {peak:.2f} GB; {target}"
                         + (f"; FAILED: {', '.join(failed)}" if failed else ""))
        lines.append("")
    s = r.get("minisd")
    if s:
        lines += ["## MiniSD generation speed", ""]
        if "skipped" in s:
            lines.append(f"Not run: {s['skipped']}.")
        else:
            lines += [f"25 steps of {s['scheduler']} with guidance {s['guidance']} (each step runs "
                      "the U-Net once on a batch holding the prompt and the empty prompt), "
                      f"{s['device']}, {s['torch_threads']} torch threads, 32x32 images.", "",
                      "| figure | measured |", "|---|---|",
                      f"| batch 1 | {s['batch1_seconds']:.2f} s per image "
                      f"({s['batch1_images_per_s']:.1f} images/s) |",
                      f"| batch 64 | {s['batch64_seconds']:.1f} s per batch "
                      f"({s['batch64_images_per_s']:.0f} images/s) |",
                      f"| cold start to first image (new Python: import, load, generate) | "
                      f"{s['cold_start_seconds']:.1f} s |"]
        lines.append("")
    c = r.get("sd15_cpu")
    if c:
        lines += ["## Stable Diffusion 1.5 at full size (random weights)", "",
                  "SD 1.5's exact U-Net (859.5 M parameters, built from its published config in "
                  "`utils/sd15.py`) with RANDOM weights, clearly not the real model: speed and "
                  "memory do not depend on the weights' values.", "",
                  "| where | figure | measured |", "|---|---|---|",
                  f"| CPU, {c['dtype']}, {c['torch_threads']} threads | one guided U-Net step "
                  f"(batch 2, 64x64 latents = 512x512 pixels) | {c['seconds_per_unet_step']:.1f} s |",
                  f"| CPU | so 25 steps, one image | about {c['seconds_per_image_25_steps_estimate']:.0f}"
                  " s (25 x the step; the VAE decode adds more) |",
                  f"| CPU | memory the U-Net and one step added | "
                  f"{c['peak_rss_growth_gb']:.1f} GB |"]
        g = r.get("sd15_gpu")
        if g:
            for mode, v in g.items():
                lines.append(f"| {m['gpu']}, fp16 | {mode.replace('_', ' ')}: 25 steps, one image | "
                             f"{v['seconds_per_image']:.2f} s, peak GPU memory "
                             f"{v['peak_gpu_memory_gb']:.2f} GB |")
        else:
            lines.append("| GPU | fp16 pipeline, attention slicing, CPU offload | not run: no CUDA "
                         "GPU on this machine |")
        lines.append("")
    gpu_check = BENCH / "gpu_check.json"  # written by python course.py gpu-check, kept here
    if gpu_check.exists():
        from tools.gpu_check import section

        lines += section(json.loads(gpu_check.read_text())).splitlines() + [""]
    lines += ["## Quality and sampler reports", "",
              "Each is written by its own script; re-measure with `python course.py bench "
              "--rerun-scripts` or the command shown.", ""]
    for rep in r.get("scripts", []):
        if rep.get("missing"):
            lines.append(f"- `bench/{rep['report']}`: not yet written (`{rep['command']}`)")
        else:
            lines.append(f"- [`bench/{rep['report']}`]({rep['report']}), written {rep['written']} "
                         f"by `{rep['command']}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-mode notebooks only")
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--rerun-scripts", action="store_true",
                        help="re-measure MiniSD quality and the sampler tables (about 40 min more)")
    parser.add_argument("--out", type=Path, default=BENCH / "REPORT.md")
    args = parser.parse_args(argv)
    import torch

    started = time.time()
    from utils.record import command_line

    report = {"command": command_line("python course.py bench", argv), "machine": machine()}
    if not args.skip_notebooks:
        print("notebooks:", flush=True)
        report["notebooks"] = {"smoke": notebooks(smoke=True)}
        if not args.quick:
            report["notebooks"]["full"] = notebooks(smoke=False)
    print("MiniSD speed ...", flush=True)
    report["minisd"] = minisd()
    print("SD 1.5 U-Net step on the CPU (random weights) ...", flush=True)
    report["sd15_cpu"] = sd15_unet_step("cpu", repeats=2)
    if torch.cuda.is_available():
        print("SD 1.5 pipeline on the GPU (random weights) ...", flush=True)
        report["sd15_gpu"] = sd15_gpu_pipeline()
    report["scripts"] = script_reports(args.rerun_scripts)
    report["minutes"] = (time.time() - started) / 60
    args.out.write_text(markdown(report))
    args.out.with_name("report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} "
          f"in {report['minutes']:.1f} min")
    return report


if __name__ == "__main__":
    main()
