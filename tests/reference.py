"""Independent references written from the paper's formulas, for the tests only.

Nothing here imports sfrik_plugin: plain autograd on the textbook expressions.
"""

import torch
import torch.nn.functional as F


def legendre_closed_form(t, degree, q):
    """P_ℓ(q; t) for ℓ <= 4 from the closed forms in the paper's notes."""
    if degree == 0:
        return torch.ones_like(t)
    if degree == 1:
        return t
    if degree == 2:
        return (q * t**2 - 1) / (q - 1)
    if degree == 3:
        return ((q + 2) * t**3 - 3 * t) / (q - 1)
    if degree == 4:
        return ((q + 2) * (q + 4) * t**4 - 6 * (q + 2) * t**2 + 3) / ((q - 1) * (q + 1))
    raise ValueError(degree)


def phi_reference(t, weights, q):
    return sum(b * legendre_closed_form(t, ell, q) for ell, b in enumerate(weights, start=1))


def kernel_mean_reference(e, weights, unbiased=False):
    gram = e @ e.T
    values = phi_reference(gram, weights, e.shape[1])
    n = e.shape[0]
    if unbiased:
        return (values.sum() - values.diagonal().sum()) / (n * (n - 1))
    return values.mean()


def sfrik_loss_reference(z1, z2, sim_coeff=4000.0, mmd_coeff=1.0, weights=(1.0, 40.0, 40.0), unbiased=False):
    """loss = sim · MSE(x, y) + mmd · (M(x) + M(y)) / 2 on the normalised views."""
    x, y = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    invariance = F.mse_loss(x, y)
    mmd = (kernel_mean_reference(x, weights, unbiased) + kernel_mean_reference(y, weights, unbiased)) / 2
    return sim_coeff * invariance + mmd_coeff * mmd, invariance, mmd


def uniformity_loss_reference(z1, z2, sim_coeff=3000.0, unif_coeff=1.0, tau=2.5):
    """Wang & Isola: log mean over i != j of exp(-2τ (1 - x_iᵀ x_j))."""
    x, y = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    invariance = F.mse_loss(x, y)
    terms = []
    for e in (x, y):
        n = e.shape[0]
        gram = e @ e.T
        mask = ~torch.eye(n, dtype=torch.bool)
        terms.append(torch.exp(-2 * tau * (1 - gram[mask])).mean().log())
    uniformity = (terms[0] + terms[1]) / 2
    return sim_coeff * invariance + unif_coeff * uniformity, invariance, uniformity
