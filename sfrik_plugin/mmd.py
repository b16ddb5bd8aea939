"""MMD between a batch of embeddings on the sphere and the uniform distribution.

For a rotation-invariant kernel ``K(u, v) = φ(uᵀv)``, ``E_{u~U} K(z, u)`` is the same constant
``m_U`` for every z (rotation invariance), so

    MMD²(Q, U) = E_{z,z'~Q} φ(zᵀz') − m_U,

and with a batch ``Z`` (N × q) the first term is the mean of φ over the Gram matrix ``Z Zᵀ``:
the *V-statistic* (diagonal included, the official SFRIK code) or the *U-statistic*
(diagonal excluded, unbiased). For SFRIK's truncated Legendre kernel ``m_U = 0``.

Computation paths (all exact, all giving the same number):

``gram``     one Gram product forward (O(N² q)), and a backward that uses the symmetry of the
             Gram matrix to need a single ``φ'(G) Z`` product, where autograd would do two.
``blocked``  the same in row blocks, recomputing each block in the backward: memory
             O(block · N + N q) instead of O(N²), for very large batches.
``feature``  kernels of degree <= 2 only: ``Σ_ij (c0 + c1 t_ij + c2 t_ij²)
             = c0 N² + c1 ||Σ_i z_i||² + c2 ||Zᵀ Z||²_F``, O(N q²) time and O(q²) memory.
``auto``     ``feature`` when it applies and q < N, else ``gram``, or ``blocked`` when the
             N_local × N block would exceed 64 Mi elements.

Distributed modes (when a process group with more than one rank is initialised):

``sharded``     (default) each rank computes only its own rows of the global Gram matrix,
                ``n_local × N``, and the partial sums are all-reduced: 1/W of the work and
                memory of ``replicated``, same loss and gradients.
``replicated``  the official code's scheme: gather the global batch with gradients, compute the
                whole N × N matrix on every rank.
``none``        ignore the process group: local-batch statistic.

Everything runs in float32 (float64 inputs stay float64) even under fp16/bf16 autocast.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .distributed import all_reduce_sum, gather_rows, world_size_and_rank
from .kernels import RotationInvariantKernel, TruncatedLegendreKernel, build_kernel

__all__ = [
    "kernel_mean",
    "mmd_to_uniform",
    "ESTIMATORS",
    "METHODS",
    "DISTRIBUTED_MODES",
    "GRAM_BLOCK_ELEMENTS",
]

ESTIMATORS = ("v", "u")
METHODS = ("auto", "gram", "blocked", "feature")
DISTRIBUTED_MODES = ("auto", "sharded", "replicated", "none")
#: largest Gram block (elements) the automatic choice builds at once: 64 Mi floats = 256 MiB
GRAM_BLOCK_ELEMENTS = 1 << 26


def _phi_block(kernel, rows: Tensor, cols: Tensor, dim: int, diagonal_start: int | None, with_derivative: bool):
    """φ (and φ') on ``rows @ colsᵀ``, with the entries (i, diagonal_start + i) zeroed if asked."""
    gram = rows @ cols.T
    if with_derivative:
        value, derivative = kernel.phi_and_derivative(gram, dim)
    else:
        value, derivative = kernel.phi(gram, dim), None
    del gram
    if diagonal_start is not None:
        diagonal = torch.arange(rows.shape[0], device=rows.device)
        value[diagonal, diagonal + diagonal_start] = 0
        if derivative is not None:
            derivative[diagonal, diagonal + diagonal_start] = 0
    return value, derivative


class _KernelRowSum(torch.autograd.Function):
    """``Σ_{i ∈ rows, j ∈ cols} φ(r_iᵀ c_j) / normaliser``, summed over ranks if ``group``.

    ``cols`` is the whole (global) batch and the ``rows`` of all ranks partition it, so the
    global sum is symmetric in its arguments and the gradient for row ``z_k`` is
    ``2 Σ_j φ'(z_kᵀ z_j) z_j / normaliser``: one product, computed from this rank's rows alone.
    ``cols`` therefore receives no gradient (pass it detached).
    """

    @staticmethod
    def forward(ctx, rows, cols, kernel, dim, diagonal_start, block_size, group, normaliser):
        keep_derivative = block_size is None
        total = rows.new_zeros(())
        saved_derivative = None
        step = rows.shape[0] if block_size is None else block_size
        for start in range(0, rows.shape[0], step):
            block = rows[start : start + step]
            diagonal = None if diagonal_start is None else diagonal_start + start
            value, derivative = _phi_block(kernel, block, cols, dim, diagonal, keep_derivative)
            total = total + value.sum()
            saved_derivative = derivative
        if group is not None:
            torch.distributed.all_reduce(total, group=group)
        ctx.kernel, ctx.dim, ctx.diagonal_start = kernel, dim, diagonal_start
        ctx.block_size, ctx.group, ctx.normaliser = block_size, group, normaliser
        if keep_derivative:
            ctx.save_for_backward(cols, saved_derivative)
        else:
            ctx.save_for_backward(cols, rows)
        return total / normaliser

    @staticmethod
    def backward(ctx, grad_output):
        grad = grad_output.contiguous().clone()
        if ctx.group is not None:
            # every rank's (identical) output depends on these rows
            torch.distributed.all_reduce(grad, group=ctx.group)
        scale = grad * (2.0 / ctx.normaliser)
        if ctx.block_size is None:
            cols, derivative = ctx.saved_tensors
            return (derivative @ cols) * scale, None, None, None, None, None, None, None
        cols, rows = ctx.saved_tensors
        grad_rows = torch.empty_like(rows)
        for start in range(0, rows.shape[0], ctx.block_size):
            block = rows[start : start + ctx.block_size]
            diagonal = None if ctx.diagonal_start is None else ctx.diagonal_start + start
            _, derivative = _phi_block(ctx.kernel, block, cols, ctx.dim, diagonal, True)
            torch.mm(derivative, cols, out=grad_rows[start : start + ctx.block_size])
        return grad_rows * scale, None, None, None, None, None, None, None


def _feature_space_sum(z: Tensor, coefficients, unbiased: bool, group, total_rows: int) -> Tensor:
    """``Σ_{i,j} φ(z_iᵀ z_j)`` (over ranks if ``group``) for ``φ(t) = c0 + c1 t + c2 t²``."""
    c0, c1, c2 = coefficients
    column_sum = all_reduce_sum(z.sum(dim=0), group)
    total = c0 * total_rows**2 + c1 * column_sum.dot(column_sum)
    if c2 != 0:
        second_moment = all_reduce_sum(z.T @ z, group)  # q × q: the only O(q²) object
        total = total + c2 * second_moment.pow(2).sum()
    if unbiased:
        squared_norms = z.pow(2).sum(dim=1)
        diagonal = (c0 + c1 * squared_norms + c2 * squared_norms.pow(2)).sum()
        total = total - all_reduce_sum(diagonal, group)
    return total


def _as_kernel(kernel) -> RotationInvariantKernel:
    if kernel is None:
        return TruncatedLegendreKernel()
    if isinstance(kernel, str):
        return build_kernel(kernel)
    if not isinstance(kernel, RotationInvariantKernel):
        raise TypeError(
            f"kernel must be a RotationInvariantKernel, a registered kernel name or None, got {type(kernel).__name__}"
        )
    return kernel


def _check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def check_embeddings(z: Tensor, name: str = "z", check_finite: bool = True) -> None:
    """Raise a ``ValueError``/``TypeError`` naming what is wrong with a batch of embeddings."""
    if not isinstance(z, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name} must be 2-D (batch, dim), got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {z.dtype}")
    if z.shape[1] < 2:
        raise ValueError(
            f"{name} has dimension q = {z.shape[1]}; the sphere S^(q-1) needs q >= 2 (shape {tuple(z.shape)})"
        )
    if z.shape[0] < 1:
        raise ValueError(f"{name} is an empty batch (shape {tuple(z.shape)})")
    if check_finite and not bool(torch.isfinite(z).all()):
        bad = int((~torch.isfinite(z)).sum())
        raise ValueError(f"{name} holds {bad} non-finite value(s) (NaN or inf)")


def _float32_at_least(z: Tensor) -> Tensor:
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def resolve_distributed(distributed: str, group: Any = None) -> tuple[str, Any, int, int]:
    """Map a distributed mode to ``(mode, group, world_size, rank)``, ``mode`` in sharded/replicated/none."""
    _check_choice("distributed", distributed, DISTRIBUTED_MODES)
    world_size, rank = world_size_and_rank(group)
    if world_size == 1 or distributed == "none":
        return "none", None, 1, 0
    if distributed == "auto":
        distributed = "sharded"
    if group is None:
        group = torch.distributed.group.WORLD
    return distributed, group, world_size, rank


def kernel_mean(
    z: Tensor,
    kernel: RotationInvariantKernel | str | None = None,
    *,
    estimator: str = "v",
    method: str = "auto",
    block_size: int | None = None,
    distributed: str = "auto",
    group: Any = None,
    check_finite: bool = True,
) -> Tensor:
    """Mean of ``φ(z_iᵀ z_j)`` over the (global) batch's Gram matrix.

    Args:
        z: embeddings, ``(N_local, q)``; rows are expected on the unit sphere.
        kernel: a :class:`RotationInvariantKernel`, a registered name, or ``None`` for SFRIK's
            ``TruncatedLegendreKernel((1, 40, 40))``.
        estimator: ``"v"`` averages over all N² pairs (the official code), ``"u"`` over the
            N(N-1) pairs i ≠ j (unbiased).
        method: ``"auto"``, ``"gram"``, ``"blocked"`` or ``"feature"`` (module docstring).
        block_size: rows per block for ``"blocked"`` (default: as many as fit in
            :data:`GRAM_BLOCK_ELEMENTS`).
        distributed: ``"auto"`` (= ``"sharded"`` under a process group), ``"sharded"``,
            ``"replicated"`` or ``"none"``.
        group: process group (default: the world).
        check_finite: raise on NaN/inf inputs (one device sync per call).

    Returns:
        A scalar tensor (float32, or float64 for float64 input), identical on every rank.

    Example:
        >>> import torch
        >>> z = torch.nn.functional.normalize(torch.randn(512, 64), dim=1)
        >>> value = kernel_mean(z, "legendre")  # ≈ φ(1)/N = 81/512 for uniform samples
        >>> bool(value < 0.5)
        True
    """
    kernel = _as_kernel(kernel)
    check_embeddings(z, check_finite=check_finite)
    _check_choice("estimator", estimator, ESTIMATORS)
    _check_choice("method", method, METHODS)
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1):
        raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}")
    dim = z.shape[1]
    coefficients = kernel.feature_space_coefficients(dim)
    if method == "feature" and coefficients is None:
        raise ValueError(
            f"method='feature' needs a kernel of degree <= 2; {kernel!r} has none. Use 'gram', 'blocked' or 'auto'."
        )
    mode, group, world_size, rank = resolve_distributed(distributed, group)
    unbiased = estimator == "u"

    device_type = z.device.type if z.device.type in ("cuda", "cpu", "xpu", "mps") else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        z = _float32_at_least(z)
        if mode == "replicated":
            z, _, _ = gather_rows(z, group, differentiable=True)
            mode, group = "none", None
        local_rows = z.shape[0]
        if mode == "sharded":
            columns, offset, sizes = gather_rows(z, group, differentiable=False)
            total_rows = sum(sizes)
        else:
            columns, offset, total_rows = z.detach(), 0, local_rows
        if total_rows < 2:
            raise ValueError(f"the MMD needs at least 2 embeddings in the (global) batch, got {total_rows}")
        normaliser = float(total_rows * (total_rows - 1) if unbiased else total_rows**2)

        if method == "auto":
            if coefficients is not None and dim < total_rows:
                method = "feature"
            elif local_rows * total_rows > GRAM_BLOCK_ELEMENTS:
                method = "blocked"
            else:
                method = "gram"
        if method == "feature":
            return _feature_space_sum(z, coefficients, unbiased, group, total_rows) / normaliser
        if method == "blocked" and block_size is None:
            block_size = max(1, GRAM_BLOCK_ELEMENTS // total_rows)
        return _KernelRowSum.apply(
            z,
            columns,
            kernel,
            dim,
            offset if unbiased else None,
            block_size if method == "blocked" else None,
            group,
            normaliser,
        )


def mmd_to_uniform(z: Tensor, kernel: RotationInvariantKernel | str | None = None, **kwargs) -> Tensor:
    """Squared MMD between the batch ``z`` (rows on the sphere) and the uniform distribution.

    ``kernel_mean(z, kernel, **kwargs) - kernel.uniform_mean(q)``; takes the same options.

    Example:
        >>> import torch
        >>> collapsed = torch.nn.functional.normalize(torch.ones(256, 32), dim=1)
        >>> round(float(mmd_to_uniform(collapsed)), 3)  # every pair at t = 1: φ(1) = 1 + 40 + 40
        81.0
    """
    kernel = _as_kernel(kernel)
    return kernel_mean(z, kernel, **kwargs) - kernel.uniform_mean(z.shape[1])
