"""utils.samplers: hand-written samplers against diffusers' schedulers and against exact scores
(utils.gmm's Gaussian mixture), and utils.sampler_report's findings."""
import math

import pytest
import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       HeunDiscreteScheduler)

from utils.gmm import GaussianMixture, energy_distance, mean_distance
from utils.samplers import (SAMPLERS, CountingModel, adam_like, dpm_solver_pp, euler, heun,
                            karras_sigmas, quiet_numpy_copy_warning, run, steps_for_nfe, trajectory)


def analytic_eps(x: torch.Tensor, sigma) -> torch.Tensor:
    """A smooth, nonlinear stand-in for a network (VE convention): any well-conditioned
    function will do. It reads ``x / sqrt(1 + sigma^2)``, of order 1 at every noise level (as a
    network's input is), so float32 round-off inside a scheduler is not amplified.
    """
    sigma = float(sigma)
    x_in = x / math.sqrt(1 + sigma**2)
    return sigma * x_in / math.sqrt(1 + sigma**2) + 0.3 * torch.tanh(2 * x_in) * sigma / (1 + sigma)


def vp_sigma(scheduler, t) -> float:
    """The VE noise level of a VP timestep: sigma = sqrt((1 - alpha_bar) / alpha_bar)."""
    alpha_bar = scheduler.alphas_cumprod[int(t)].double()
    return float(((1 - alpha_bar) / alpha_bar).sqrt())


@pytest.mark.parametrize("steps", [5, 10, 50])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_euler_equals_ddim_scheduler_in_vp_coordinates(steps, spacing):
    scheduler = DDIMScheduler(clip_sample=False, set_alpha_to_one=True, timestep_spacing=spacing)
    scheduler.set_timesteps(steps)
    # float64 throughout: near sigma_max DDIM divides by sqrt(alpha_bar) ~ 0.006 (fp32 round-off)
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
    scheduler.final_alpha_cumprod = scheduler.final_alpha_cumprod.double()
    # DDIM steps from alpha_bar[t] to alpha_bar[t - 1000 // steps], at the end to 1 (sigma = 0)
    stride = scheduler.config.num_train_timesteps // steps
    sigmas = [vp_sigma(scheduler, t) for t in scheduler.timesteps]
    last = int(scheduler.timesteps[-1]) - stride
    sigmas.append(vp_sigma(scheduler, last) if last >= 0 else 0.0)

    def vp_model(x_vp, t):  # the same eps model, seen from VP space: x_vp = x / sqrt(1 + sigma^2)
        sigma = vp_sigma(scheduler, t)
        return analytic_eps(x_vp * math.sqrt(1 + sigma**2), sigma)

    x_T = torch.randn(4, 3, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x_vp = x_T / math.sqrt(1 + sigmas[0] ** 2)
    ours = list(euler(analytic_eps, sigmas, x_T))
    for t, x_ve, sigma_next in zip(scheduler.timesteps, ours, sigmas[1:]):
        x_vp = scheduler.step(vp_model(x_vp, t), t, x_vp, eta=0.0).prev_sample
        torch.testing.assert_close(x_ve / math.sqrt(1 + sigma_next**2), x_vp, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("steps", [4, 12, 40])
@pytest.mark.parametrize("karras", [False, True])
def test_euler_equals_euler_discrete_scheduler(steps, karras):
    scheduler = EulerDiscreteScheduler(use_karras_sigmas=karras)
    with quiet_numpy_copy_warning():
        scheduler.set_timesteps(steps)
    sigmas = scheduler.sigmas.double()  # (steps + 1,), VE, ending at 0
    x_T = torch.randn(2, 16, generator=torch.Generator().manual_seed(1)) * sigmas[0].float()
    x = x_T.clone()  # this scheduler's `sample` is in VE space; its model input is VP
    for i, t in enumerate(scheduler.timesteps):
        model_input = scheduler.scale_model_input(x, t)
        eps = analytic_eps(model_input * math.sqrt(1 + sigmas[i] ** 2), sigmas[i])
        x = scheduler.step(eps, t, x).prev_sample
    *_, ours = euler(analytic_eps, sigmas, x_T.double())
    torch.testing.assert_close(ours.float(), x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("steps", [3, 10, 30])
def test_heun_equals_heun_discrete_scheduler(steps):
    with quiet_numpy_copy_warning():  # its __init__ calls set_timesteps too
        scheduler = HeunDiscreteScheduler()
        scheduler.set_timesteps(steps)
    x_T = torch.randn(3, 7, generator=torch.Generator().manual_seed(2)) * scheduler.init_noise_sigma
    x = x_T.clone()
    for i, t in enumerate(scheduler.timesteps):  # 2 * steps - 1 model calls
        sigma = scheduler.sigmas[i]
        x = scheduler.step(analytic_eps(x, sigma), t, x).prev_sample
    sigmas = torch.unique_consecutive(scheduler.sigmas.double())  # the steps' sigmas, ending at 0
    ours, nfe = run(heun, analytic_eps, sigmas, x_T.double())
    assert nfe == len(scheduler.timesteps) == 2 * steps - 1
    torch.testing.assert_close(ours.float(), x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("steps", [5, 20])
def test_dpm_solver_wrapper_equals_the_schedulers_own_loop(steps):
    """Our VE <-> VP conversion and schedule override reproduce diffusers' own DPM-Solver++ loop."""
    scheduler = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)
    with quiet_numpy_copy_warning():
        scheduler.set_timesteps(steps)
    sigmas = scheduler.sigmas.double()
    x_T = torch.randn(2, 9, generator=torch.Generator().manual_seed(3)) * sigmas[0]
    x_vp = x_T / math.sqrt(1 + sigmas[0] ** 2)
    for i, t in enumerate(scheduler.timesteps):
        eps = analytic_eps(x_vp * math.sqrt(1 + sigmas[i] ** 2), sigmas[i])
        x_vp = scheduler.step(eps, t, x_vp).prev_sample
    *_, ours = dpm_solver_pp(analytic_eps, sigmas, x_T)
    torch.testing.assert_close(ours, x_vp, rtol=1e-5, atol=1e-5)  # sigma = 0 at the end: VP = VE


def test_first_order_dpm_solver_is_ddim():
    sigmas = karras_sigmas(8)
    x_T = 20 * torch.randn(5, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    first_order = dpm_solver_pp(analytic_eps, sigmas, x_T, order=1)
    for ours, dpm in zip(euler(analytic_eps, sigmas, x_T), first_order):
        torch.testing.assert_close(ours.float(), dpm.float(), rtol=1e-5, atol=1e-5)


SINGLE = GaussianMixture([[1.0, -2.0]], [[[0.25, 0.0], [0.0, 0.25]]], [1.0])  # N(mu, 0.5^2 I)
ODE_SOLVERS = [name for name, sampler in SAMPLERS.items() if sampler is not adam_like]


@pytest.mark.parametrize("name", ODE_SOLVERS)
def test_every_ode_sampler_recovers_a_gaussian(name):
    x_T = SINGLE.sample(20_000, sigma=20.0, generator=torch.Generator().manual_seed(5))
    x, _ = run(SAMPLERS[name], SINGLE, karras_sigmas(200), x_T)
    torch.testing.assert_close(x.mean(0), SINGLE.means[0], atol=0.02, rtol=0)
    torch.testing.assert_close(x.std(0), torch.full((2,), 0.5, dtype=torch.float64),
                               atol=0, rtol=0.03)


def test_adam_like_recovers_the_mean_but_not_the_spread():
    """Lesson 07 says: per-coordinate normalisation is no ODE solver, at any step count."""
    x_T = SINGLE.sample(20_000, sigma=20.0, generator=torch.Generator().manual_seed(5))
    x, _ = run(adam_like, SINGLE, karras_sigmas(200), x_T)
    torch.testing.assert_close(x.mean(0), SINGLE.means[0], atol=0.1, rtol=0)
    assert (x.std(0) > 1.0).all()  # twice the true 0.5, and more


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samplers_yield_every_state_and_count_evaluations(name):
    sampler, steps = SAMPLERS[name], 6
    sigmas = karras_sigmas(steps)
    counted = CountingModel(SINGLE)
    states = trajectory(sampler, counted, sigmas, SINGLE.sample(10, sigma=20.0))
    assert len(states) == steps + 1 and all(s.shape == (10, 2) for s in states)
    assert counted.nfe == (2 * steps - 1 if sampler is heun else steps)
    assert steps_for_nfe(sampler, counted.nfe) == steps


def test_mixture_eps_is_minus_sigma_times_the_exact_score():
    gmm = GaussianMixture.default()
    x = gmm.sample(50, sigma=0.7, generator=torch.Generator().manual_seed(6)).requires_grad_()
    sigma = 0.7
    dist = torch.distributions
    components = dist.MultivariateNormal(gmm.means, gmm.covs + sigma**2 * torch.eye(2))
    density = dist.MixtureSameFamily(dist.Categorical(gmm.weights), components)
    (score,) = torch.autograd.grad(density.log_prob(x).sum(), x)
    torch.testing.assert_close(gmm.eps(x.detach(), sigma), -sigma * score)


def test_karras_schedule():
    sigmas = karras_sigmas(10, 0.02, 20.0)
    assert sigmas.shape == (11,) and sigmas[-1] == 0
    torch.testing.assert_close(sigmas[[0, -2]], torch.tensor([20.0, 0.02], dtype=torch.float64))
    assert (sigmas[1:] < sigmas[:-1]).all()


def test_energy_distance():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    y = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    assert abs(energy_distance(x, x)) < 1e-12
    assert math.isclose(mean_distance(x), torch.cdist(x, x).mean().item(), rel_tol=1e-9)
    floor = energy_distance(x, y)
    assert 0 < floor < energy_distance(x, y + 0.3) and math.isclose(floor, energy_distance(y, x))


def _rows(table: dict) -> list[dict]:
    return [{"sampler": name, "budget": b, "nfe": b, "distance": d}
            for name, by_budget in table.items() for b, d in by_budget.items()]


def test_findings_are_computed_from_the_table():
    from utils.sampler_report import findings

    # Two samplers level off together far above the floor: the shared error is named.
    plateau = findings(_rows({"Euler/DDIM": {4: 9.0, 16: 3.3}, "Heun": {4: 20.0, 16: 3.1},
                              "heavy ball": {4: 12.0, 16: 6.0}}), floor=0.3)
    assert plateau[0] == "NFE 4: best is Euler/DDIM (9, 30.0x the noise floor); Euler/DDIM gives 9."
    shared = [line for line in plateau if line.startswith("At NFE 16")]
    assert len(shared) == 1 and "Euler/DDIM, Heun are within 10% of the best (3.1" in shared[0]
    assert "heavy ball never gets within 2x the noise floor (up to NFE 16); it is worse than " \
           "Euler/DDIM at 2 of the 2 budgets" in " ".join(plateau)
    # When the best reaches the floor there is no shared error to name.
    converged = findings(_rows({"Euler/DDIM": {4: 9.0, 16: 0.5}, "Heun": {4: 20.0, 16: 0.5}}),
                         floor=0.3)
    assert not any(line.startswith("At NFE") for line in converged)
    assert "Heun is within 2x the noise floor from NFE 16 on" in " ".join(converged)
