"""Lesson 07's test problem: a Gaussian mixture whose noised score is exact, and the energy
distance that compares a sampler's output with exact samples of it.

With the exact score (``GaussianMixture.eps``) the only error left in a sample is the sampler's
own, so the samplers of ``utils.samplers`` can be ranked without a network in the way:

    gmm = GaussianMixture.default()
    x, nfe = run(euler, gmm, karras_sigmas(10), 20.0 * torch.randn(n, 2, dtype=torch.float64))
    energy_distance(x, gmm.sample(n))   # lower is better; two exact samples give the noise floor
"""
import torch

from utils.checks import check_int, check_number

__all__ = ["GaussianMixture", "mean_distance", "energy_distance"]


class GaussianMixture:
    """A Gaussian mixture in D dimensions whose noised score is exact.

    Noising ``x0 ~ sum_k w_k N(mu_k, S_k)`` with ``sigma`` gives
    ``sum_k w_k N(mu_k, S_k + sigma^2 I)``, so ``eps(x, sigma) = -sigma * grad log p_sigma(x)``
    has a closed form. Float64 throughout.

    Args:
        means: ``(K, D)``; covs: ``(K, D, D)``, positive definite; weights: ``(K,)`` (normalised).
    """

    def __init__(self, means, covs, weights):
        self.means = _as_float64("means", means)
        self.covs = _as_float64("covs", covs)
        self.weights = _as_float64("weights", weights)
        if self.means.ndim != 2:
            raise ValueError(f"means must be (K, D), got shape {tuple(self.means.shape)}.")
        k, d = self.means.shape
        if self.covs.shape != (k, d, d):
            raise ValueError(f"covs must be (K, D, D) = {(k, d, d)} for means {(k, d)}, got shape "
                             f"{tuple(self.covs.shape)}.")
        if torch.linalg.cholesky_ex(self.covs).info.any():
            raise ValueError("covs must be symmetric positive definite (each one), but one is not.")
        if self.weights.shape != (k,) or (self.weights < 0).any() or not self.weights.sum() > 0:
            raise ValueError(f"weights must be {k} non-negative numbers, not all zero, got "
                             f"{self.weights.tolist()}.")
        self.weights = self.weights / self.weights.sum()
        self.dim = self.means.shape[1]

    @classmethod
    def default(cls) -> "GaussianMixture":
        """Lesson 07's mixture: six thin blobs of unequal weight on a ring, a round one inside."""
        angles = torch.arange(6, dtype=torch.float64) * torch.pi / 3
        means = torch.cat([3 * torch.stack([angles.cos(), angles.sin()], 1), torch.zeros(1, 2)])
        rot = torch.stack([torch.stack([angles.cos(), -angles.sin()], 1),
                           torch.stack([angles.sin(), angles.cos()], 1)], 1)  # (6, 2, 2)
        stretch = torch.diag(torch.tensor([0.05, 0.6], dtype=torch.float64) ** 2)  # thin radially
        covs = torch.cat([rot @ stretch @ rot.transpose(1, 2), 0.4**2 * torch.eye(2)[None]])
        weights = torch.tensor([3, 1, 2, 1, 3, 1, 2], dtype=torch.float64)
        return cls(means, covs, weights)

    def sample(self, n: int, sigma: float = 0.0, generator: torch.Generator | None = None):
        """``n`` exact samples of the mixture noised to ``sigma``: ``(n, D)``."""
        check_int("n", n)
        check_number("sigma", sigma, 0)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.covs)[k]  # (n, D, D)
        z = torch.randn(n, self.dim, 1, dtype=torch.float64, generator=generator)
        x0 = self.means[k] + (chol @ z)[..., 0]
        return x0 + sigma * torch.randn(n, self.dim, dtype=torch.float64, generator=generator)

    def eps(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The exact noise estimate ``-sigma * grad log p_sigma(x)`` for ``x`` ``(n, D)``."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be a tensor (n, {self.dim}), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}.")
        sigma = check_number("sigma", float(sigma) if isinstance(sigma, torch.Tensor) else sigma, 0)
        cov = self.covs + sigma**2 * torch.eye(self.dim, dtype=torch.float64)  # (K, D, D)
        precision = torch.linalg.inv(cov)
        diff = x.to(torch.float64)[:, None, :] - self.means[None]               # (n, K, D)
        solved = torch.einsum("kij,nkj->nki", precision, diff)                 # (n, K, D)
        log_n = -0.5 * (diff * solved).sum(-1) - 0.5 * torch.logdet(cov)       # (n, K)
        resp = torch.softmax(log_n + self.weights.log(), dim=1)                # responsibilities
        return (sigma * (resp[..., None] * solved).sum(1)).to(x.dtype)

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self.eps(x, sigma)


def _as_float64(name: str, value) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be numbers (a list, array or tensor), got {value!r}.") from None


def _check_samples(name: str, value, dim: int | None = None) -> None:
    """``value`` must be a non-empty tensor (n, D), with D = ``dim`` when given."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor (n, D), got {type(value).__name__}.")
    if value.ndim != 2 or len(value) == 0 or (dim is not None and value.shape[1] != dim):
        want = "(n, D)" if dim is None else f"(n, {dim})"
        raise ValueError(f"{name} must be a non-empty tensor {want}, got shape {tuple(value.shape)}.")


def mean_distance(a: torch.Tensor, b: torch.Tensor | None = None, chunk: int = 2048) -> float:
    """``E|A - B|`` over all pairs of rows of ``a (n, D)`` and ``b (m, D)`` (``b=None``: a, a)."""
    _check_samples("a", a)
    if b is not None:
        _check_samples("b", b, a.shape[1])
    check_int("chunk", chunk)
    a = a.to(torch.float64)
    if b is not None:
        b = b.to(torch.float64)
        total = sum(float(torch.cdist(a[i:i + chunk], b).sum())
                    for i in range(0, len(a), chunk))
        return total / (len(a) * len(b))
    total = 0.0  # symmetric: each pair of blocks once, off-diagonal blocks twice
    for i in range(0, len(a), chunk):
        for j in range(i, len(a), chunk):
            block = float(torch.cdist(a[i:i + chunk], a[j:j + chunk]).sum())
            total += block if i == j else 2 * block
    return total / len(a) ** 2


def energy_distance(x: torch.Tensor, y: torch.Tensor, y_self: float | None = None) -> float:
    """Energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` between samples ``(n, D)`` and ``(m, D)``.

    Zero only when the two distributions are equal. Plain (V-statistic) averages: two
    independent samples of one distribution give a small positive number, the noise floor.
    ``y_self = mean_distance(y)`` can be passed to save work when ``y`` is a fixed reference.
    """
    _check_samples("x", x)
    _check_samples("y", y, x.shape[1])
    if y_self is not None:
        check_number("y_self", y_self, 0)
    y_self = mean_distance(y) if y_self is None else y_self
    return 2 * mean_distance(x, y) - mean_distance(x) - y_self
