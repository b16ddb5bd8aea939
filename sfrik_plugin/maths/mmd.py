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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .distributed import all_gather_rows, all_reduce_sum, gather_rows, row_counts, world_size_and_rank
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


def _phi_block(kernel, gram: Tensor, dim: int, diagonal_start: int | None, with_derivative: bool):
    """φ (and φ') of a Gram block, with the entries (i, diagonal_start + i) zeroed if asked."""
    if with_derivative:
        value, derivative = kernel.phi_and_derivative(gram, dim)
    else:
        value, derivative = kernel.phi(gram, dim), None
    if diagonal_start is not None:
        diagonal = torch.arange(gram.shape[0], device=gram.device)
        value[diagonal, diagonal + diagonal_start] = 0
        if derivative is not None:
            derivative[diagonal, diagonal + diagonal_start] = 0
    return value, derivative


@dataclass(frozen=True)
class _Plan:
    """Everything :class:`_SphereStatistics` needs besides the tensors."""

    kernel: RotationInvariantKernel
    dim: int
    normalize: bool
    pairs: tuple[tuple[int, int], ...]  # (i, j): mean squared distance between views i and j
    regularized: tuple[int, ...]  # views whose kernel mean is computed
    unbiased: bool
    block_size: int | None  # None: whole row block at once, φ' kept for the backward
    group: Any  # set in sharded mode only
    offset: int  # first global row of this rank
    sizes: tuple[int, ...]  # rows per rank
    eps: float = 1e-12

    @property
    def total_rows(self) -> int:
        return sum(self.sizes)


class _SphereStatistics(torch.autograd.Function):
    """Pair distances and kernel means of (optionally L2-normalised) views, in one pass.

    Returns the vector ``[pair means..., kernel means...]``:
    ``mean_{k,d} (x_ik - x_jk)²`` for each pair (i, j) and ``mean φ(x_kᵀ x_l)`` for each
    regularised view, over the global batch, where ``x = z / ||z||`` (or ``z``).

    Why one hand-written function: the normalisation, the invariance and the MMD all reduce to
    Gram entries of the *raw* embeddings (``x_kᵀ x_l = s_k s_l z_kᵀ z_l`` with ``s = 1/||z||``),
    and their gradients to ``α ⊙ (B Z) + β ⊙ z + γ ⊙ z_other`` with per-row scalars α, β, γ.
    So a step costs one Gram product forward and one product backward per view plus a few
    passes over the N × q inputs, where autograd's composition needs two products and a dozen
    passes. And because the global Gram matrix is symmetric and the ranks' rows partition
    it, the gradient for row k is ``2 Σ_l φ'(x_kᵀ x_l) x_l``: each rank computes it from its own
    rows (n_local × N) alone, which is what makes the sharded mode exact.
    """

    @staticmethod
    def forward(ctx, plan: _Plan, *views):
        dim, total = plan.dim, plan.total_rows
        whole = plan.block_size is None
        # Raw Gram blocks first: their diagonal gives the norms of the regularised views for free.
        raw_grams, columns = {}, {}
        for v in plan.regularized:
            z = views[v]
            all_rows = all_gather_rows(z, list(plan.sizes), plan.group) if plan.group is not None else z
            columns[v] = all_rows
            if whole:
                raw_grams[v] = z @ all_rows.T
        scales, active, squared_norms = [], [], []
        for v, z in enumerate(views):
            if v in raw_grams:
                local = torch.arange(z.shape[0], device=z.device)
                norms = raw_grams[v][local, local + plan.offset].clamp_min(0).sqrt()
            else:
                norms = torch.linalg.vector_norm(z, dim=1)
            if plan.normalize:
                scale = 1.0 / norms.clamp_min(plan.eps)
                active.append((norms >= plan.eps).to(z.dtype))  # normalize's Jacobian projects only here
            else:
                scale = torch.ones_like(norms)
                active.append(torch.zeros_like(norms))
            scales.append(scale)
            squared_norms.append((norms * scale).pow(2))  # ||x_k||²

        row_dots = {}
        sums = []
        for i, j in plan.pairs:
            key = (min(i, j), max(i, j))
            if key not in row_dots:
                row_dots[key] = torch.linalg.vecdot(views[key[0]], views[key[1]])
            cross = row_dots[key] * scales[i] * scales[j]
            sums.append((squared_norms[i] + squared_norms[j] - 2.0 * cross).sum())

        kept = {}
        for v in plan.regularized:
            z, s = views[v], scales[v]
            all_rows = columns[v]
            all_scales = all_gather_rows(s, list(plan.sizes), plan.group) if plan.group is not None else s
            columns[v] = (all_rows, all_scales)
            step = z.shape[0] if whole else plan.block_size
            total_value = z.new_zeros(())
            for start in range(0, z.shape[0], step):
                gram = raw_grams.pop(v) if whole else z[start : start + step] @ all_rows.T
                gram.mul_(s[start : start + step, None]).mul_(all_scales[None, :])
                diagonal = plan.offset + start if plan.unbiased else None
                value, derivative = _phi_block(plan.kernel, gram, dim, diagonal, whole)
                total_value = total_value + value.sum()
                del value
                if whole:
                    # rowsum of φ'(G) ∘ G is x_kᵀ(∂/∂x_k): the normalisation's Jacobian needs it
                    dot_gram = (derivative * gram).sum(dim=1)
                    kept[v] = (derivative.mul_(all_scales[None, :]), dot_gram)
                del gram
            sums.append(total_value)

        out = torch.stack(sums) if sums else views[0].new_zeros(0)
        if plan.group is not None:
            torch.distributed.all_reduce(out, group=plan.group)
        normalisers = [float(total * dim)] * len(plan.pairs) + [
            float(total * (total - 1) if plan.unbiased else total * total)
        ] * len(plan.regularized)
        out = out / out.new_tensor(normalisers)

        ctx.plan = plan
        ctx.normalisers = normalisers
        ctx.kept = kept
        ctx.columns = columns
        ctx.row_dots = row_dots
        ctx.save_for_backward(*views)
        ctx.scales, ctx.active, ctx.squared_norms = scales, active, squared_norms
        return out

    @staticmethod
    def backward(ctx, grad_out):
        plan = ctx.plan
        views = ctx.saved_tensors
        grad = grad_out.contiguous().clone()
        if plan.group is not None:
            # every rank's (identical) output depends on these rows
            torch.distributed.all_reduce(grad, group=plan.group)
        weights = 2.0 * grad / grad.new_tensor(ctx.normalisers)
        pair_weights = weights[: len(plan.pairs)]
        kernel_weights = dict(zip(plan.regularized, weights[len(plan.pairs) :]))
        scales, active = ctx.scales, ctx.active

        grads = []
        for v, z in enumerate(views):
            s = scales[v]
            # ∂L/∂x_v = self_coeff x_v - Σ_o others[o] x_o + w_v B_v Z_all, and the normalisation
            # turns it into ∂L/∂z_v = s (∂L/∂x_v - active · x_v (x_vᵀ ∂L/∂x_v)), x_v = s z_v, i.e.
            # ∂L/∂z_v = w_v s B_v Z_all + beta z_v - Σ_o others[o] s s_o z_o, where beta needs
            # along = x_vᵀ ∂L/∂x_v row by row.
            self_coeff = z.new_zeros(())
            others: dict[int, Tensor] = {}
            for (i, j), a in zip(plan.pairs, pair_weights):
                if v not in (i, j) or i == j:
                    continue
                o = j if i == v else i
                self_coeff = self_coeff + a
                others[o] = others.get(o, 0.0) + a
            along = self_coeff * ctx.squared_norms[v]
            for o, a in others.items():
                along = along - a * ctx.row_dots[(min(v, o), max(v, o))] * s * scales[o]

            def beta(rows: slice, along_rows: Tensor) -> Tensor:
                return s[rows] * s[rows] * (self_coeff - active[v][rows] * along_rows)

            if v in kernel_weights:
                w = kernel_weights[v]
                all_rows, all_scales = ctx.columns[v]
                step = z.shape[0] if plan.block_size is None else plan.block_size
                result = torch.empty_like(z)
                for start in range(0, z.shape[0], step):
                    rows = slice(start, start + step)
                    if plan.block_size is None:
                        derivative, dot_gram = ctx.kept[v]
                        derivative = derivative * (w * s)[:, None]  # a copy: keeps retain_graph safe
                    else:
                        gram = z[rows] @ all_rows.T
                        gram.mul_(s[rows, None]).mul_(all_scales[None, :])
                        diagonal = plan.offset + start if plan.unbiased else None
                        _, derivative = _phi_block(plan.kernel, gram, plan.dim, diagonal, True)
                        dot_gram = (derivative * gram).sum(dim=1)
                        del gram
                        derivative.mul_(all_scales[None, :]).mul_((w * s[rows])[:, None])
                    # the beta z_v term rides along in the product: z_v's rows sit in Z_all
                    local = torch.arange(derivative.shape[0], device=z.device)
                    derivative[local, local + plan.offset + start] += beta(rows, along[rows] + w * dot_gram)
                    torch.mm(derivative, all_rows, out=result[rows])
                    del derivative
            else:
                # (expand_as: a broadcast per-row factor takes a much slower addcmul kernel on CPU)
                result = z * beta(slice(None), along)[:, None].expand_as(z)
            for o, a in others.items():
                result.addcmul_(views[o], (-a * s * scales[o])[:, None].expand_as(z))
            grads.append(result)
        return (None, *grads)


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
    normalize: bool = False,
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
        normalize: L2-normalise the rows first (differentiably).
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
    return sphere_statistics(
        [z],
        (),
        (0,),
        kernel,
        normalize=normalize,
        estimator=estimator,
        method=method,
        block_size=block_size,
        distributed=distributed,
        group=group,
    )[0]


def sphere_statistics(
    views: Sequence[Tensor],
    pairs: Sequence[tuple[int, int]],
    regularized: Sequence[int],
    kernel: RotationInvariantKernel,
    *,
    normalize: bool,
    estimator: str,
    method: str,
    block_size: int | None,
    distributed: str,
    group: Any = None,
) -> Tensor:
    """``[pair means..., kernel means...]`` of a list of same-shape views (inputs already checked).

    The engine under :func:`kernel_mean` and the losses: the mean squared distance between
    (normalised) views i and j for each pair, then the kernel mean of each regularised view,
    all over the global batch, by the computation path and distributed mode asked for.
    """
    _check_choice("estimator", estimator, ESTIMATORS)
    _check_choice("method", method, METHODS)
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1):
        raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}")
    dim = views[0].shape[1]
    coefficients = kernel.feature_space_coefficients(dim)
    if method == "feature" and coefficients is None:
        raise ValueError(
            f"method='feature' needs a kernel of degree <= 2; {kernel!r} has none. Use 'gram', 'blocked' or 'auto'."
        )
    mode, group, world_size, rank = resolve_distributed(distributed, group)
    unbiased = estimator == "u"

    device_type = views[0].device.type if views[0].device.type in ("cuda", "cpu", "xpu", "mps") else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        views = [_float32_at_least(v) for v in views]
        if mode == "replicated":
            views = [gather_rows(v, group, differentiable=True)[0] for v in views]
            mode, group = "none", None
        local_rows = views[0].shape[0]
        if mode == "sharded":
            sizes = row_counts(local_rows, views[0].device, group)
            offset = sum(sizes[:rank])
        else:
            sizes, offset = [local_rows], 0
        total_rows = sum(sizes)
        if total_rows < 2:
            raise ValueError(f"the MMD needs at least 2 embeddings in the (global) batch, got {total_rows}")

        if method == "auto":
            if coefficients is not None and dim < total_rows:
                method = "feature"
            elif local_rows * total_rows > GRAM_BLOCK_ELEMENTS:
                method = "blocked"
            else:
                method = "gram"
        if method == "feature":
            return _feature_space_statistics(
                views, pairs, regularized, coefficients, normalize, unbiased, group, total_rows
            )
        if method == "blocked" and block_size is None:
            block_size = max(1, GRAM_BLOCK_ELEMENTS // total_rows)
        plan = _Plan(
            kernel=kernel,
            dim=dim,
            normalize=normalize,
            pairs=tuple(tuple(p) for p in pairs),
            regularized=tuple(regularized),
            unbiased=unbiased,
            block_size=block_size if method == "blocked" else None,
            group=group if mode == "sharded" else None,
            offset=offset,
            sizes=tuple(sizes),
        )
        return _SphereStatistics.apply(plan, *views)


def _feature_space_statistics(views, pairs, regularized, coefficients, normalize, unbiased, group, total_rows):
    """The same vector as :class:`_SphereStatistics`, by autograd in feature space (degree <= 2)."""
    dim = views[0].shape[1]
    if normalize:
        views = [F.normalize(v, dim=1, eps=1e-12) for v in views]
    pieces = [(views[i] - views[j]).pow(2).sum() / float(total_rows * dim) for i, j in pairs]
    pieces = [all_reduce_sum(p, group) for p in pieces]
    normaliser = float(total_rows * (total_rows - 1) if unbiased else total_rows**2)
    pieces += [
        _feature_space_sum(views[v], coefficients, unbiased, group, total_rows) / normaliser for v in regularized
    ]
    return torch.stack(pieces) if pieces else views[0].new_zeros(0)


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
