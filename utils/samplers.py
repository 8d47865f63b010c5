"""Samplers for diffusion models, written as optimisers: short generators yielding every state.

Every sampler has the same signature, in the style of smalldiffusion (Yuan Chen Yang):

    for x in euler(model, sigmas, x_T): ...   # x after each step; the last one is the sample

- ``model(x, sigma) -> eps``: the noise estimate at noise level ``sigma`` (a float), variance
  exploding (VE) convention ``x = x0 + sigma * noise`` as in ``utils.score``;
- ``sigmas``: a decreasing schedule, usually ending at 0 (``karras_sigmas``);
- ``x``: the starting point ``x_T``, e.g. ``sigmas[0] * torch.randn(...)``.

Read as optimisation, ``eps`` is the gradient and ``sigma - sigma_next`` the learning rate:
``x <- x - lr * eps`` is one SGD step, and the same as one Euler step of the probability-flow
ODE ``dx/dsigma = eps(x, sigma)`` (and, in VP coordinates, one DDIM step with eta=0;
tests/test_samplers.py checks both against diffusers). Wrap the model in ``CountingModel`` to
count its evaluations (NFE); ``run`` does that for you.

``distance_vs_nfe`` runs every sampler at every NFE budget: the loop that lesson 07 and
bench/samplers_*.py share. Lesson 07's test problem (a Gaussian mixture with an exact score, and
the energy distance) is in ``utils.gmm``; the tables and findings read from the rows are in
``utils.sampler_report``.
"""
import contextlib
import warnings
from itertools import pairwise

import torch

from utils.checks import check_callable, check_choice, check_int, check_number

__all__ = ["karras_sigmas", "CountingModel", "run", "trajectory", "euler", "heun",
           "dpm_solver_pp", "heavy_ball", "nesterov", "adam_like", "gradient_estimation",
           "SAMPLERS", "steps_for_nfe", "distance_vs_nfe", "quiet_numpy_copy_warning"]


def karras_sigmas(steps: int, sigma_min: float = 0.02, sigma_max: float = 20.0,
                  rho: float = 7.0, dtype=torch.float64) -> torch.Tensor:
    """Karras et al.'s (EDM) schedule: ``steps`` levels from ``sigma_max`` to ``sigma_min``, then 0.

    Evenly spaced in ``sigma ** (1 / rho)``, so the steps crowd at low noise. ``(steps + 1,)``.
    """
    check_int("steps", steps)
    check_number("sigma_min", sigma_min, 0, strict=True)
    check_number("sigma_max", sigma_max, sigma_min, strict=True)
    check_number("rho", rho, 0, strict=True)
    ramp = torch.linspace(0, 1, steps, dtype=dtype) if steps > 1 else torch.zeros(1, dtype=dtype)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1, dtype=dtype)])


class CountingModel:
    """Wraps an eps model and counts its calls: the number of function evaluations (NFE).

    One call on a batch counts once: the cost that matters is sequential network passes.
    """

    def __init__(self, model):
        self.model, self.nfe = model, 0

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        self.nfe += 1
        return self.model(x, sigma)


def run(sampler, model, sigmas, x: torch.Tensor, **kwargs) -> tuple[torch.Tensor, int]:
    """Run ``sampler`` to the end; returns ``(final x, NFE)``."""
    _check_sampler(sampler)
    check_callable("model", model, "model(x, sigma) -> eps")
    counted = CountingModel(model)
    for x in sampler(counted, sigmas, x, **kwargs):
        pass
    return x, counted.nfe


def trajectory(sampler, model, sigmas, x: torch.Tensor, **kwargs) -> list[torch.Tensor]:
    """Every state ``[x_T, x_1, ..., x_final]`` of one run (for plots and sliders)."""
    _check_sampler(sampler)
    return [x] + list(sampler(model, sigmas, x, **kwargs))


def _floats(sigmas) -> list[float]:
    return [float(s) for s in sigmas]


def _check_sampler(sampler) -> None:
    if isinstance(sampler, str) or not callable(sampler):
        raise TypeError(f"sampler must be a sampler function such as euler or SAMPLERS[name], with name "
                        f"one of {', '.join(map(repr, SAMPLERS))}; got {sampler!r}.")


def _check_sampling(model, sigmas, x) -> list[float]:
    """The checks every sampler makes first; returns ``sigmas`` as floats."""
    check_callable("model", model, "model(x, sigma) -> eps")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, the starting point x_T, got {type(x).__name__}.")
    try:
        values = _floats(sigmas)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"sigmas must be a 1-D list or tensor of noise levels, got {sigmas!r}.") from None
    if len(values) < 2 or min(values) < 0 or any(a <= b for a, b in pairwise(values)):
        raise ValueError(f"sigmas must be at least 2 noise levels >= 0 that decrease (such as "
                         f"karras_sigmas(steps)), got {[round(v, 4) for v in values][:8]}.")
    return values


@torch.no_grad()
def euler(model, sigmas, x):
    """Euler = DDIM (eta=0) = SGD with learning rate sigma - sigma_next. 1 NFE a step."""
    for sigma, sigma_next in pairwise(_check_sampling(model, sigmas, x)):
        eps = model(x, sigma)                # 1. the "gradient"
        x = x - (sigma - sigma_next) * eps   # 2. x_t -> x_t-1: one SGD step
        yield x


@torch.no_grad()
def heun(model, sigmas, x):
    """Heun's method (EDM, Karras et al. 2022, Alg. 1): average the slopes at both ends.

    2 NFE per step, except the last step to sigma = 0, which is plain Euler (2 * steps - 1).
    """
    for sigma, sigma_next in pairwise(_check_sampling(model, sigmas, x)):
        eps = model(x, sigma)
        x_euler = x - (sigma - sigma_next) * eps
        if sigma_next == 0:
            x = x_euler
        else:  # correct with the slope where the Euler step landed
            eps_next = model(x_euler, sigma_next)
            x = x - (sigma - sigma_next) * (eps + eps_next) / 2
        yield x


@torch.no_grad()
def gradient_estimation(model, sigmas, x, gamma: float = 2.0):
    """Permenter & Yuan (2024): step along ``gamma * eps + (1 - gamma) * eps_prev``.

    With gamma = 2 this is eps + (eps - eps_prev): a look *ahead* along the change of
    eps, the opposite of momentum's look back. gamma = 1 is Euler. 1 NFE a step
    (smalldiffusion's ``samples(..., gam=2)``).
    """
    check_number("gamma", gamma)
    eps_prev = None
    for sigma, sigma_next in pairwise(_check_sampling(model, sigmas, x)):
        eps = model(x, sigma)
        eps_bar = eps if eps_prev is None else gamma * eps + (1 - gamma) * eps_prev
        x = x - (sigma - sigma_next) * eps_bar
        eps_prev = eps
        yield x


@torch.no_grad()
def heavy_ball(model, sigmas, x, beta: float = 0.5):
    """Polyak's heavy ball: step along a running average of past eps. 1 NFE a step.

    The average is exponential (torch's SGD with dampening=momentum), so a constant
    eps moves x as far as Euler does; beta = 0 is Euler.
    """
    check_number("beta", beta, 0, 1)
    velocity = None
    for sigma, sigma_next in pairwise(_check_sampling(model, sigmas, x)):
        eps = model(x, sigma)
        velocity = eps if velocity is None else beta * velocity + (1 - beta) * eps
        x = x - (sigma - sigma_next) * velocity
        yield x


@torch.no_grad()
def nesterov(model, sigmas, x, beta: float = 0.5):
    """Nesterov's look-ahead: evaluate the gradient where momentum alone would carry x.

    That point has gone a fraction ``beta`` of the step, so the model is asked at its noise
    level, ``sigma - beta * lr``. 1 NFE per step; ``beta = 0`` is Euler.
    """
    check_number("beta", beta, 0, 1)
    velocity = None
    for sigma, sigma_next in pairwise(_check_sampling(model, sigmas, x)):
        lr = sigma - sigma_next
        if velocity is None:
            velocity = model(x, sigma)
        else:
            x_ahead = x - beta * lr * velocity             # 1. where momentum alone goes
            eps = model(x_ahead, sigma - beta * lr)        # 2. the gradient there
            velocity = beta * velocity + (1 - beta) * eps  # 3. the usual momentum update
        x = x - lr * velocity
        yield x


@torch.no_grad()
def adam_like(model, sigmas, x, beta1: float = 0.5, beta2: float = 0.999,
              delta: float = 1e-8):
    """Adam with learning rate sigma - sigma_next: each pixel's step is divided by the
    running root-mean-square of its own eps. 1 NFE a step.

    Adam as written (bias-corrected moments, per coordinate and sample). Not a solver
    of the probability-flow ODE: the step hardly depends on |eps|, which is what tells
    a sampler how far to go (lesson 07 measures the damage).
    """
    values = _check_sampling(model, sigmas, x)
    check_number("beta1", beta1, 0, 1)
    check_number("beta2", beta2, 0, 1)
    check_number("delta", delta, 0, strict=True)
    m = v = torch.zeros_like(x)
    for i, (sigma, sigma_next) in enumerate(pairwise(values), start=1):
        eps = model(x, sigma)
        m = beta1 * m + (1 - beta1) * eps
        v = beta2 * v + (1 - beta2) * eps**2
        m_hat, v_hat = m / (1 - beta1**i), v / (1 - beta2**i)
        x = x - (sigma - sigma_next) * m_hat / (v_hat.sqrt() + delta)
        yield x


@contextlib.contextmanager
def quiet_numpy_copy_warning():
    """Silence one harmless DeprecationWarning, and only it, inside a ``with`` block.

    Some schedulers' ``set_timesteps`` call ``np.array(tensor)``; numpy 2 then asks the
    tensor's ``__array__`` for a ``copy`` keyword that torch's ``Tensor.__array__`` lacks,
    warns, and copies anyway. Nothing in diffusers is deprecated, so strict mode should pass.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=r"__array__ implementation doesn't accept a copy")
        yield


@torch.no_grad()
def dpm_solver_pp(model, sigmas, x, order: int = 2):
    """DPM-Solver++(2M) (Lu et al. 2022): diffusers' multistep scheduler on our eps model.

    diffusers' schedulers work in variance-preserving (VP) space,
    x_vp = x / sqrt(1 + sigma^2), with our VE sigma = sqrt((1 - alpha_bar) / alpha_bar)
    in ``scheduler.sigmas``. Each step converts VE -> VP, steps, and converts back. The
    update reads only ``scheduler.sigmas``, never the training betas, so our schedule
    replaces them after ``set_timesteps``. 1 NFE a step; the last one (to 0) first order.
    """
    from diffusers import DPMSolverMultistepScheduler

    sigmas = torch.tensor(_check_sampling(model, sigmas, x), dtype=torch.float64)
    check_choice("order", order, (1, 2, 3))
    scheduler = DPMSolverMultistepScheduler(
        solver_order=order, algorithm_type="dpmsolver++", final_sigmas_type="zero")
    with quiet_numpy_copy_warning():
        scheduler.set_timesteps(len(sigmas) - 1)
    scheduler.sigmas = sigmas.clone()  # our VE schedule replaces the scheduler's own
    scheduler.set_begin_index(0)
    for i, timestep in enumerate(scheduler.timesteps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        eps = model(x, float(sigma))
        x_vp = (x / (1 + sigma**2).sqrt()).to(x.dtype)           # 1. VE -> VP
        x_vp = scheduler.step(eps, timestep, x_vp).prev_sample  # 2. the solver's step
        x = (x_vp * (1 + sigma_next**2).sqrt()).to(x.dtype)      # 3. VP -> VE
        yield x


# name -> sampler; every sampler has the signature (model, sigmas, x, **options)
SAMPLERS = {
    "Euler/DDIM": euler,
    "Heun": heun,
    "DPM-Solver++(2M)": dpm_solver_pp,
    "gradient estimation": gradient_estimation,
    "heavy ball": heavy_ball,
    "Nesterov": nesterov,
    "Adam-like": adam_like,
}


def steps_for_nfe(sampler, nfe: int) -> int:
    """Steps that spend at most ``nfe`` model evaluations (Heun: 2 per step but the last)."""
    _check_sampler(sampler)
    check_int("nfe", nfe)
    return max(1, (nfe + 1) // 2) if sampler is heun else max(1, nfe)


def distance_vs_nfe(model, x_T: torch.Tensor, distance, nfes, samplers=None,
                    schedule=karras_sigmas, on_result=None) -> list[dict]:
    """Run every sampler from the same ``x_T`` at every NFE budget and score the final samples.

    Args:
        model: ``model(x, sigma) -> eps``. x_T: the starting points, shape ``(n, ...)``.
        distance: ``distance(x) -> float``, lower is better (e.g. energy distance to a reference).
        nfes: NFE budgets; each sampler gets ``steps_for_nfe`` steps of ``schedule(steps)``.
        samplers: ``{name: sampler}``, default ``SAMPLERS``. on_result: called with each row.

    Returns:
        one dict per run: sampler, budget, nfe (as counted), distance, seconds.
    """
    import time

    check_callable("model", model, "model(x, sigma) -> eps")
    check_callable("distance", distance, "lambda x: energy_distance(x, reference)")
    check_callable("schedule", schedule, "karras_sigmas")
    if not isinstance(x_T, torch.Tensor):
        raise TypeError(f"x_T must be a tensor of starting points (n, ...), got {type(x_T).__name__}.")
    if isinstance(nfes, (str, int)) or not hasattr(nfes, "__iter__"):
        raise TypeError(f"nfes must be a list of NFE budgets such as [4, 8, 16], got {nfes!r}.")
    nfes = list(nfes)
    if not nfes:
        raise ValueError("nfes is empty: give one or more NFE budgets such as [4, 8, 16].")
    for nfe in nfes:
        check_int("each of nfes", nfe)
    if samplers is not None:
        if not isinstance(samplers, dict) or not samplers:
            raise TypeError(f"samplers must be a dict {{name: sampler}} such as SAMPLERS, got {samplers!r}.")
        for sampler in samplers.values():
            _check_sampler(sampler)
    if on_result is not None:
        check_callable("on_result", on_result, "rows.append")
    rows = []
    for name, sampler in (samplers or SAMPLERS).items():
        for budget in nfes:
            start = time.perf_counter()
            x, nfe = run(sampler, model, schedule(steps_for_nfe(sampler, budget)), x_T)
            row = {"sampler": name, "budget": budget, "nfe": nfe, "distance": distance(x),
                   "seconds": time.perf_counter() - start}
            rows.append(row)
            if on_result is not None:
                on_result(row)
    return rows
