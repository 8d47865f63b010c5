"""One training loop for everything the course trains.

    fit(loss_fn, params, optimizer, steps=...)          the loop: resumable, on one or many processes
    get_accelerator(mixed_precision, cpu)               this process's one ``Accelerator``
    warmup_cosine(base, progress, step, warmup, floor)  the learning-rate schedule
    EMA(params, decay, warmup)                          an exponential moving average of the weights
    save_checkpoint(folder, ...) / load_checkpoint      safetensors + JSON, written atomically
    token_ids(tokenizer, texts)                         token ids padded exactly as the pipeline pads them

The MNIST denoiser (``utils.score``), every MiniSD stage (``utils.minisd.train``) and the fine-tuning
recipes (``utils.finetune``) all train through ``fit``; what differs between them is only the loss
(``loss_fn``), the trained tensors and the settings.

Several processes. Launch the same script with ``accelerate launch --num_processes N`` (or
``torchrun --nproc_per_node N``): every process draws the same global batch from the same random
generators and computes the loss on its own share of it (``loss_fn(share)``, where ``share(x)`` keeps
this process's rows of ``x``); gradients are averaged over the processes before the optimizer
steps. So N processes take exactly the steps one process takes with the whole batch, each doing
1/N of the work, and only the main process writes files. A loss that ignores ``share`` is still
correct on N processes, only not faster.
"""
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

CHECKPOINT_TENSORS, CHECKPOINT_INFO = "state.safetensors", "state.json"
_ACCELERATOR = None  # accelerate keeps one state per process: one Accelerator, made once


# ---------------------------------------------------------------- the pieces
def warmup_cosine(base: float, progress: float, step: int, warmup: int = 0,
                  floor: float = 0.1) -> float:
    """The learning rate at ``step``: a linear warm-up over the first ``warmup`` steps, times a
    cosine decay from ``base`` to ``floor * base`` as ``progress`` goes from 0 to 1."""
    lr = base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
    return lr * min(1.0, (step + 1) / warmup) if warmup else lr


class EMA:
    """An exponential moving average of trained tensors: ``average += (1 - decay) * (p - average)``
    after every step. With ``warmup``, the decay grows as ``min(decay, (1 + step) / (10 + step))``,
    so the early, random weights are forgotten quickly. Sampling from the average gives smoother,
    better images than the last step's weights."""

    def __init__(self, params: dict[str, torch.Tensor], decay: float, warmup: bool = False):
        self.decay, self.warmup = decay, warmup
        self.average = {name: p.detach().clone() for name, p in params.items()}

    @torch.no_grad()
    def update(self, params: dict[str, torch.Tensor], step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay
        for name, p in params.items():
            self.average[name].lerp_(p.detach(), 1 - decay)

    @torch.no_grad()
    def copy_to(self, module: torch.nn.Module) -> None:
        """Put the averaged weights into ``module`` (whose parameter names they were made from)."""
        own = dict(module.named_parameters())
        for name, value in self.average.items():
            own[name].copy_(value)


def token_ids(tokenizer, texts: list[str], device=None) -> torch.Tensor:
    """Token ids (B, model_max_length), padded and truncated exactly as
    ``StableDiffusionPipeline.encode_prompt`` makes them (no attention mask)."""
    ids = tokenizer(list(texts), padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    return ids if device is None else ids.to(device)


def get_accelerator(mixed_precision: str = "no", cpu: bool = True):
    """This process's ``Accelerator``, made on the first call (accelerate keeps one state per
    process, so it cannot change its mixed precision or device later: a call that needs others is
    refused with what to do). Under ``accelerate launch`` or ``torchrun`` it joins the other
    processes (gloo on CPUs, NCCL on GPUs)."""
    from accelerate import Accelerator

    global _ACCELERATOR
    if _ACCELERATOR is None:
        _ACCELERATOR = Accelerator(mixed_precision=mixed_precision, cpu=cpu)
    made = _ACCELERATOR
    if made.mixed_precision != mixed_precision or (made.device.type == "cpu") != cpu:
        wanted = "the CPU" if cpu else "a GPU"
        raise RuntimeError(
            f"This kernel already trained with mixed precision {made.mixed_precision!r} on "
            f"{made.device.type}; this needs {mixed_precision!r} on {wanted}, and accelerate allows "
            "one setting per process. Restart the kernel, or train everything in it with the same "
            "device and dtype.")
    return made


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(folder: str | Path, tensors: dict[str, torch.Tensor], info: dict) -> None:
    """Write ``tensors`` (safetensors) and ``info`` (JSON) to ``folder``. Both are written beside
    the old checkpoint first and swapped in after, so an interruption while saving leaves the
    previous checkpoint whole (``load_checkpoint`` finds it)."""
    folder = Path(folder)
    partial, old = folder.with_name(folder.name + ".partial"), folder.with_name(folder.name + ".old")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
              partial / CHECKPOINT_TENSORS)
    (partial / CHECKPOINT_INFO).write_text(json.dumps(info, indent=1))  # last: marks it complete
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(partial, folder)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(folder: str | Path) -> Path | None:
    """The complete checkpoint saved in ``folder`` (or kept beside it by an interrupted save)."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / CHECKPOINT_INFO).is_file() and (candidate / CHECKPOINT_TENSORS).is_file():
            return candidate
    return None


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, info)`` from a checkpoint folder; a damaged one raises a ``ValueError`` that
    says how to start again."""
    found = find_checkpoint(folder)
    if found is None:
        raise FileNotFoundError(f"{folder} holds no checkpoint ({CHECKPOINT_INFO} and "
                                f"{CHECKPOINT_TENSORS}).")
    try:
        return load_file(found / CHECKPOINT_TENSORS), json.loads((found / CHECKPOINT_INFO).read_text())
    except Exception as err:  # OSError, JSONDecodeError, safetensors' own SafetensorError
        raise ValueError(f"The checkpoint in {found} cannot be read ({type(err).__name__}: {err}). "
                         "Delete that folder to train again from the start.") from None


def discard_checkpoint(folder: str | Path) -> None:
    """Remove a checkpoint folder and anything an interrupted save left beside it."""
    folder = Path(folder)
    for path in (folder, folder.with_name(folder.name + ".old"),
                 folder.with_name(folder.name + ".partial")):
        shutil.rmtree(path, ignore_errors=True)


def differences(old: dict, new: dict, ignore=()) -> str:
    """"lr: 0.01 then, 0.5 now, ..." for the settings that differ ("" if none do)."""
    new = json.loads(json.dumps(new, default=str))
    return ", ".join(f"{k}: {old.get(k)!r} then, {v!r} now" for k, v in new.items()
                     if k not in ignore and old.get(k) != v)


# ---------------------------------------------------------------- the loop
@dataclass
class Fitted:
    """What ``fit`` did. ``losses`` holds every step's loss, those of earlier (resumed) calls too."""
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0      # the step a checkpoint was found at (0: a fresh start)
    seconds: float = 0.0       # training time over every call that worked on this run
    finished: bool = True      # False: stopped at ``stop_at`` with a checkpoint, to go on later
    stopped_by: str = "steps"  # "steps", or the time cap that ended it ("time cap (6 min)")

    @property
    def step(self) -> int:
        return len(self.losses)


def share_of(accelerator):
    """``share(x)``: this process's rows of a batch ``x`` (every ``num_processes``-th, from its
    index); the identity in a single process."""
    rank, world = accelerator.process_index, accelerator.num_processes
    if world == 1:
        return lambda x: x

    def share(x):
        if len(x) % world:
            raise ValueError(f"A batch of {len(x)} cannot be shared equally by {world} processes; "
                             f"choose a batch size that is a multiple of {world}.")
        return x[rank::world]
    return share


def _average_gradients(params: list[torch.Tensor], world: int, bucket: int = 2**25) -> None:
    """Average the gradients over the processes, a bucket of ~``bucket`` numbers at a time."""
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    for p in params:
        if p.grad is None:  # every process must send the same tensors
            p.grad = torch.zeros_like(p)
    grads, size = [], 0
    for i, p in enumerate(params):
        grads.append(p.grad)
        size += p.numel()
        last = i == len(params) - 1
        if size >= bucket or last or params[i + 1].grad.dtype != p.grad.dtype:
            flat = _flatten_dense_tensors(grads)
            torch.distributed.all_reduce(flat)
            flat /= world
            for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
                grad.copy_(synced)
            grads, size = [], 0


def _all_max(values: list[float], world: int) -> list[float]:
    """The largest of each value over the processes (so every process decides the same)."""
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return t.tolist()


def _generator_states(generators) -> tuple[dict, list]:
    tensors, numpy_states = {}, []
    for i, g in enumerate(generators):
        if isinstance(g, torch.Generator):
            tensors[f"generator.{i}"] = g.get_state()
            numpy_states.append(None)
        else:
            numpy_states.append(g.bit_generator.state)
    tensors["torch_rng"] = torch.get_rng_state()
    return tensors, numpy_states


def fit(loss_fn, params: dict[str, torch.Tensor], optimizer, *, steps: int, accelerator=None,
        autocast=None, schedule=None, clip: float | None = None, ema: EMA | None = None,
        checkpoint: str | Path | None = None, checkpoint_every: int | None = None,
        checkpoint_seconds: float | None = None, minutes: float | None = None, generators=(),
        recipe: dict | None = None, stop_at: int | None = None, progress: bool = True,
        callback=None, desc: str = "train", show: str = "loss") -> Fitted:
    """Train ``params`` for ``steps`` steps of ``optimizer`` on ``loss_fn``; resumable.

    Args:
        loss_fn: ``loss_fn(share) -> loss``, one step's scalar loss, drawing its batch from the
            ``generators``; ``share(x)`` keeps this process's rows of a batch (module docstring).
        params: the trained tensors by name (what the checkpoint saves and the processes average).
        optimizer: over those tensors; ``fit`` prepares it with the accelerator.
        accelerator: default ``get_accelerator()``: this process's, fp32 on the CPU.
        autocast: a context factory for the forward pass (default: the accelerator's).
        schedule: ``schedule(step, progress) -> lr``, set before every step (None: constant).
        clip: clip the gradients' global norm to this (None: no clipping).
        ema: an ``EMA`` of ``params``, updated after every step and checkpointed.
        checkpoint: a folder: resume from the checkpoint in it, save one there every
            ``checkpoint_every`` steps and/or ``checkpoint_seconds`` seconds, at ``stop_at`` and on
            KeyboardInterrupt, and at the end (so a finished run can be continued with more steps).
            It is the caller's to remove once it is no longer wanted.
        minutes: a wall-time cap: the run ends at ``steps`` or after this long, whichever comes
            first, and ``progress`` (what the schedule follows) is the larger of the two fractions.
        generators: torch and numpy generators the loss draws from; their states are checkpointed
            (with torch's global one), so a resumed run draws what an uninterrupted one would.
        recipe: the settings a checkpoint must have been made with to be resumed (except "steps").
        stop_at: save a checkpoint and return after this step (``Fitted.finished`` is False).
        callback: ``callback(step, loss)`` after every step.
    """
    from tqdm.auto import tqdm

    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}.")
    accelerator = accelerator or get_accelerator()
    autocast = autocast or accelerator.autocast
    world, main = accelerator.num_processes, accelerator.is_main_process
    tensors = list(params.values())
    optimizer = accelerator.prepare(optimizer)
    share = share_of(accelerator)
    losses, seconds, resumed_from = [], 0.0, 0
    if checkpoint is not None and find_checkpoint(checkpoint):
        saved, info = load_checkpoint(checkpoint)
        if recipe is not None and (changed := differences(info.get("recipe") or {}, recipe,
                                                          ignore=("steps",))):
            raise ValueError(f"The checkpoint in {checkpoint} was made with other settings "
                             f"({changed}). Use the same settings to resume, or remove it to start "
                             "again.")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(saved[f"param.{name}"])
            if ema is not None:
                for name, value in ema.average.items():
                    value.copy_(saved[f"ema.{name}"])
        state = {}
        for key, value in saved.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state,
                                   "param_groups": optimizer.state_dict()["param_groups"]})
        if info.get("scaler") and accelerator.scaler is not None:
            accelerator.scaler.load_state_dict(info["scaler"])
        for i, g in enumerate(generators):
            if isinstance(g, torch.Generator):
                g.set_state(saved[f"generator.{i}"])
            else:
                g.bit_generator.state = info["numpy_generators"][i]
        torch.set_rng_state(saved["torch_rng"])
        losses, seconds = list(info["losses"]), float(info["seconds"])
        resumed_from = len(losses)
        if main:
            print(f"Resuming from the checkpoint at step {resumed_from} in {checkpoint}.")
    began = time.perf_counter() - seconds
    last_save = time.perf_counter()

    def save():
        if checkpoint is None:
            return
        if main:
            state, numpy_states = _generator_states(generators)
            state |= {f"param.{name}": p for name, p in params.items()}
            if ema is not None:
                state |= {f"ema.{name}": v for name, v in ema.average.items()}
            for index, moments in optimizer.state_dict()["state"].items():
                state |= {f"optim.{index}.{k}": torch.as_tensor(v) for k, v in moments.items()}
            scaler = accelerator.scaler.state_dict() if accelerator.scaler is not None else None
            save_checkpoint(checkpoint, state, {
                "step": len(losses), "losses": losses, "seconds": time.perf_counter() - began,
                "recipe": recipe, "numpy_generators": numpy_states, "scaler": scaler,
                "processes": world})
        accelerator.wait_for_everyone()

    result = Fitted(losses, resumed_from)
    bar = tqdm(total=steps, initial=len(losses), desc=desc, mininterval=2.0,
               disable=not (progress and main))
    budget = None if minutes is None else minutes * 60.0
    try:
        while True:
            elapsed = time.perf_counter() - began
            done = len(losses) / steps
            fraction, due = _all_max(
                [max(done, 0.0 if budget is None else elapsed / budget),
                 float(checkpoint_seconds is not None
                       and time.perf_counter() - last_save >= checkpoint_seconds)], world)
            if due and losses and len(losses) > resumed_from:
                save()
                last_save = time.perf_counter()
            if fraction >= 1.0:
                if done < 1.0:
                    result.stopped_by = f"time cap ({minutes:g} min)"
                if len(losses) > resumed_from:
                    save()  # the finished run's, so it can be continued with more steps
                break
            if stop_at is not None and len(losses) >= stop_at:
                save()
                result.finished = False
                break
            if schedule is not None:
                lr = schedule(len(losses), fraction)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            with autocast():
                loss = loss_fn(share)
            accelerator.backward(loss)
            if world > 1:
                _average_gradients(tensors, world)
            if clip is not None:
                accelerator.clip_grad_norm_(tensors, clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            value = loss.detach().float()
            if world > 1:
                torch.distributed.all_reduce(value)
                value /= world
            losses.append(value.item())
            if ema is not None:
                ema.update(params, len(losses))
            bar.update(1)
            bar.set_postfix({show: f"{np.mean(losses[-25:]):.4f}"}, refresh=False)
            if checkpoint_every and len(losses) % checkpoint_every == 0 and len(losses) < steps:
                save()
                last_save = time.perf_counter()
            if callback is not None:
                callback(len(losses), losses[-1])
    except KeyboardInterrupt:
        if checkpoint is not None and len(losses) > resumed_from and world == 1:
            save()
            print(f"Stopped after step {len(losses)} of {steps}; saved a checkpoint in "
                  f"{checkpoint}. Run the same command again to resume.")
        raise
    finally:
        bar.close()
        accelerator.free_memory()  # let go of the optimizer: its moments can be gigabytes
    result.seconds = time.perf_counter() - began
    return result
