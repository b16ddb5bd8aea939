"""The fused autograd function behind the ``gram`` and ``blocked`` paths.

One hand-written :class:`torch.autograd.Function` computes, for a list of same-shape views, the
mean squared distance between chosen pairs of (normalised) views and the kernel mean of chosen
views, over the global batch, with its own backward. Why by hand:

* normalisation, invariance and MMD all reduce to Gram entries of the *raw* embeddings
  (``x_kᵀ x_l = s_k s_l z_kᵀ z_l``), and their gradients to ``α ⊙ (B Z) + β ⊙ z + γ ⊙ d`` with
  per-row scalars: a step costs one Gram product forward and one product backward per view, where
  autograd's composition needs two products and a dozen passes over the N × q inputs;
* the global Gram matrix is symmetric and the ranks' rows partition it, so row k's gradient
  ``2 Σ_l φ'(x_kᵀ x_l) x_l`` comes from that rank's own rows: the sharded mode is exact;
* the invariance is computed from ``d = z_i − z_j``, which floating point subtracts exactly when
  the views nearly coincide (late in training), never from ``‖x‖² + ‖y‖² − 2xᵀy`` or from
  ``x − y`` of rounded unit vectors, which cancel catastrophically there.

Symbols (maths → variables), for view v, pair p = (i, j), local rows k, global rows l:

=============================  =================================================================
``z_v`` (n × q)                ``views[v]``: raw embeddings of this rank
``Z_v`` (N × q)                ``columns[v]``: the global batch of view v (gathered when sharded)
``n_v = ‖z_v‖``                ``norms[v]``, from the Gram diagonal when the view is regularised
``s_v = 1 / max(n_v, ε)``      ``scales[v]`` (1 without normalisation); ``x_v = s_v z_v``
``a_v``                        ``active[v]``: 1 where the normalisation's Jacobian acts (n ≥ ε)
``‖x_v‖²``                     ``unit[v]``: exactly 1 on the sphere (so differences of it vanish)
``G = x_v X_vᵀ`` (rows × N)    :func:`_gram_block`; ``B = φ'(G)``, diagonal zeroed for ``u``
``d_p = z_i − z_j``            formed by row blocks in a cached buffer, recomputed in the backward
``c_p = s_i − s_j``            ``= −d·(z_i + z_j) / (n_i n_j (n_i + n_j))``: no cancellation
``w_p = x_i − x_j``            ``= s_i d_p + c_p z_j = s_j d_p + c_p z_i``; ``‖w_p‖²`` is ``wsq``
=============================  =================================================================

Gradients: ``∂/∂z_i ‖w‖² = 2 s_i (w − a_i (x_iᵀw) x_i) = 2 s_i s_j d + 2 s_i (c − a_i s_i x_iᵀw) z_i``
with ``x_iᵀw = (‖x_i‖² − ‖x_j‖² + ‖w‖²) / 2``; the view j side mirrors it. Rows where a view is
(almost) zero use the plain form in z_i and z_j instead (``classic`` pairs): there ``s = 1/ε`` is
huge and the d-form would cancel; precision near coinciding views does not matter for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .distributed import all_gather_rows
from .kernels import RotationInvariantKernel

__all__ = ["FusedPlan", "fused_statistics", "DOUBLE_BACKWARD_MESSAGE"]

DOUBLE_BACKWARD_MESSAGE = (
    "the fused 'gram'/'blocked' SFRIK path has a hand-written first derivative only; for second "
    "derivatives (create_graph=True) use method='reference' (any kernel) or method='feature' (degree <= 2)"
)


@dataclass(frozen=True)
class FusedPlan:
    """Everything the fused function needs besides the tensors."""

    kernel: RotationInvariantKernel
    dim: int
    normalize: bool
    pairs: tuple[tuple[int, int], ...]  # (i, j): mean squared distance between views i and j
    regularized: tuple[int, ...]  # views whose kernel mean is computed
    unbiased: bool
    block_size: int | None  # None: the whole row block at once, φ' kept for the backward
    group: Any  # set in sharded mode only
    offset: int  # first global row of this rank
    sizes: tuple[int, ...]  # rows per rank
    eps: float = 1e-12

    @property
    def total_rows(self) -> int:
        return sum(self.sizes)

    @property
    def pair_normaliser(self) -> float:
        return float(self.total_rows * self.dim)

    @property
    def kernel_normaliser(self) -> float:
        n = self.total_rows
        return float(n * (n - 1) if self.unbiased else n * n)


def _gram_block(
    plan: FusedPlan,
    z_rows: Tensor,
    s_rows: Tensor,
    columns: Tensor,
    column_scales: Tensor,
    start: int,
    with_derivative: bool,
    raw: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(G, φ(G), φ'(G))`` of the rows ``start...`` of a view against the global batch, with
    ``G = diag(s_rows) z_rows Zᵀ diag(column_scales)`` and, for the U-statistic, the entries of the
    rows' own columns zeroed in φ and φ'. ``raw`` is the already computed ``z_rows Zᵀ`` (consumed)."""
    gram = raw if raw is not None else z_rows @ columns.T
    gram.mul_(s_rows[:, None]).mul_(column_scales[None, :])
    if with_derivative:
        value, derivative = plan.kernel.phi_and_derivative(gram, plan.dim)
    else:
        value, derivative = plan.kernel.phi(gram, plan.dim), None
    if plan.unbiased:
        rows = torch.arange(gram.shape[0], device=gram.device)
        own = rows + plan.offset + start
        value[rows, own] = 0
        if derivative is not None:
            derivative[rows, own] = 0
    return gram, value, derivative


#: rows of ``d = z_i − z_j`` formed at once: a buffer of 2**18 elements (1 MiB in float32) stays in
#: cache, where an N × q temporary would cost an allocation and a trip to memory per use
_DIFFERENCE_BLOCK_ELEMENTS = 1 << 18


def _difference_blocks(zi: Tensor, zj: Tensor):
    """Yields ``(rows, d)`` with ``d = z_i[rows] − z_j[rows]`` in one reused buffer."""
    step = max(1, _DIFFERENCE_BLOCK_ELEMENTS // zi.shape[1])
    buffer = zi.new_empty((min(step, zi.shape[0]), zi.shape[1]))
    for start in range(0, zi.shape[0], step):
        rows = slice(start, min(start + step, zi.shape[0]))
        yield rows, torch.sub(zi[rows], zj[rows], out=buffer[: rows.stop - start])


class _Saved:
    """Named tensors through ``ctx.save_for_backward`` (one flat list, keys kept on ctx)."""

    @staticmethod
    def save(ctx: Any, tensors: dict[str, Tensor]) -> None:
        ctx.saved_keys = tuple(tensors)
        ctx.save_for_backward(*tensors.values())

    @staticmethod
    def load(ctx: Any) -> dict[str, Tensor]:
        return dict(zip(ctx.saved_keys, ctx.saved_tensors))


def _norm_geometry(plan: FusedPlan, views: tuple[Tensor, ...], raw_grams: dict[int, Tensor]):
    """Per view: norms, scales s, active mask a, and ‖x‖² (exactly 1 on the sphere)."""
    norms, scales, active, unit = [], [], [], []
    for v, z in enumerate(views):
        if v in raw_grams:  # the Gram diagonal holds the squared norms: no extra pass over z
            rows = torch.arange(z.shape[0], device=z.device)
            n = raw_grams[v][rows, rows + plan.offset].clamp_min(0).sqrt()
        else:
            n = torch.linalg.vector_norm(z, dim=1)
        if plan.normalize:
            on_sphere = n >= plan.eps
            s = 1.0 / n.clamp_min(plan.eps)
            a = on_sphere.to(z.dtype)
            sq = torch.where(on_sphere, torch.ones_like(n), (n * s).square())
        else:
            s, a, sq = torch.ones_like(n), torch.zeros_like(n), n.square()
        norms.append(n)
        scales.append(s)
        active.append(a)
        unit.append(sq)
    return norms, scales, active, unit


def _pair_forward(
    plan: FusedPlan, zi: Tensor, zj: Tensor, geo: tuple[tuple[Tensor, Tensor], ...], precise: bool
) -> tuple[Tensor, Tensor]:
    """``(‖w‖², c)`` per row of one pair; the sum of the first is the pair's total."""
    (ni, nj), (si, sj), (ui, uj) = geo
    if not precise:  # some row is (almost) zero: the plain form, no cancellation worth guarding
        cross = torch.linalg.vecdot(zi, zj) * si * sj
        return (ui + uj - 2.0 * cross).clamp_min(0), si - sj
    dd, dz = zi.new_empty(zi.shape[0]), zi.new_empty(zi.shape[0])
    for rows, d in _difference_blocks(zi, zj):
        torch.linalg.vecdot(d, d, out=dd[rows])
        torch.linalg.vecdot(d, zj[rows], out=dz[rows])
    if plan.normalize:
        # c = s_i − s_j = (n_j − n_i) / (n_i n_j) and n_j² − n_i² = −d·(z_i + z_j) = −(‖d‖² + 2 d·z_j)
        c = -(dd + 2.0 * dz) / (ni * nj * (ni + nj))
    else:
        c = torch.zeros_like(dd)
    wsq = si.square() * dd + 2.0 * si * c * dz + c.square() * nj.square()
    return wsq.clamp_min(0), c


class _FusedStatistics(torch.autograd.Function):
    """``(pair distances [P], kernel means [R])`` of the views; see the module docstring."""

    @staticmethod
    def forward(ctx: Any, plan: FusedPlan, *views: Tensor) -> tuple[Tensor, Tensor]:
        whole = plan.block_size is None
        columns = {
            v: all_gather_rows(views[v], list(plan.sizes), plan.group) if plan.group is not None else views[v]
            for v in plan.regularized
        }
        raw_grams = {v: views[v] @ columns[v].T for v in plan.regularized} if whole else {}
        norms, scales, active, unit = _norm_geometry(plan, views, raw_grams)
        # the d-form needs every row of the pair on the sphere (or no normalisation at all)
        precise = not plan.normalize or bool(torch.stack([a.min() for a in active]).min() > 0)

        saved: dict[str, Tensor] = {}
        for v, z in enumerate(views):
            saved[f"z{v}"], saved[f"n{v}"], saved[f"s{v}"] = z, norms[v], scales[v]
            saved[f"a{v}"], saved[f"u{v}"] = active[v], unit[v]
        pair_sums = []
        for p, (i, j) in enumerate(plan.pairs):
            geo = ((norms[i], norms[j]), (scales[i], scales[j]), (unit[i], unit[j]))
            wsq, c = _pair_forward(plan, views[i], views[j], geo, precise)
            pair_sums.append(wsq.sum())
            saved[f"wsq{p}"], saved[f"c{p}"] = wsq, c

        kernel_sums = []
        for v in plan.regularized:
            z, s = views[v], scales[v]
            all_scales = all_gather_rows(s, list(plan.sizes), plan.group) if plan.group is not None else s
            saved[f"Z{v}"], saved[f"S{v}"] = columns[v], all_scales
            step = z.shape[0] if whole else plan.block_size
            assert step is not None
            total = z.new_zeros(())
            for start in range(0, z.shape[0], step):
                rows = slice(start, start + step)
                gram, value, derivative = _gram_block(
                    plan, z[rows], s[rows], columns[v], all_scales, start, whole, raw_grams.pop(v, None)
                )
                total = total + value.sum()
                del value
                if whole:
                    assert derivative is not None
                    # rowsum of φ'(G) ∘ G is x_kᵀ(∂/∂x_k): the normalisation's Jacobian needs it
                    saved[f"dotgram{v}"] = (derivative * gram).sum(dim=1)
                    saved[f"B{v}"] = derivative.mul_(all_scales[None, :])
                del gram
            kernel_sums.append(total)

        distances = torch.stack(pair_sums) if pair_sums else views[0].new_zeros(0)
        kernel_means = torch.stack(kernel_sums) if kernel_sums else views[0].new_zeros(0)
        if plan.group is not None:  # one all-reduce for both: the partial sums of every rank
            both = torch.cat([distances, kernel_means])
            torch.distributed.all_reduce(both, group=plan.group)
            distances, kernel_means = both[: len(pair_sums)], both[len(pair_sums) :]
        ctx.plan, ctx.precise, ctx.num_views = plan, precise, len(views)
        _Saved.save(ctx, saved)
        return distances / plan.pair_normaliser, kernel_means / plan.kernel_normaliser

    @staticmethod
    def backward(ctx: Any, grad_distances: Tensor, grad_kernels: Tensor):
        if torch.is_grad_enabled():  # create_graph=True: someone asked for a second derivative
            raise RuntimeError(DOUBLE_BACKWARD_MESSAGE)
        return _backward(ctx, grad_distances, grad_kernels)


@once_differentiable
def _backward(ctx: Any, grad_distances: Tensor, grad_kernels: Tensor) -> tuple[Tensor | None, ...]:
    plan: FusedPlan = ctx.plan
    saved = _Saved.load(ctx)
    views = [saved[f"z{v}"] for v in range(ctx.num_views)]
    grad = torch.cat([grad_distances.reshape(-1), grad_kernels.reshape(-1)]).contiguous().clone()
    if plan.group is not None:  # every rank's (identical) outputs depend on every rank's rows
        torch.distributed.all_reduce(grad, group=plan.group)
    pair_w = 2.0 * grad[: len(plan.pairs)] / plan.pair_normaliser
    kernel_w = dict(zip(plan.regularized, 2.0 * grad[len(plan.pairs) :] / plan.kernel_normaliser))

    # per view: the coefficient of its own rows (β), and the pair terms in d (precise) or z_o (classic)
    beta = [torch.zeros_like(saved[f"n{v}"]) for v in range(len(views))]
    d_terms: list[tuple[int, int, Tensor]] = []  # (i, j, coefficient of d = z_i − z_j in ∂/∂z_i)
    other_terms: list[tuple[int, int, Tensor]] = []  # (v, o, coefficient of z_o in ∂/∂z_v)
    for p, (i, j) in enumerate(plan.pairs):
        a = pair_w[p]
        si, sj, ai, aj = saved[f"s{i}"], saved[f"s{j}"], saved[f"a{i}"], saved[f"a{j}"]
        wsq, c = saved[f"wsq{p}"], saved[f"c{p}"]
        xi_w = (saved[f"u{i}"] - saved[f"u{j}"] + wsq) / 2  # x_iᵀw
        xj_w = (saved[f"u{i}"] - saved[f"u{j}"] - wsq) / 2  # x_jᵀw
        if ctx.precise:
            beta[i] = beta[i] + a * si * (c - ai * si * xi_w)
            beta[j] = beta[j] - a * sj * (c - aj * sj * xj_w)
            d_terms.append((i, j, a * si * sj))
        else:
            beta[i] = beta[i] + a * si * si * (1 - ai * xi_w)
            beta[j] = beta[j] + a * sj * sj * (1 + aj * xj_w)
            other_terms += [(i, j, -a * si * sj), (j, i, -a * si * sj)]

    grads: list[Tensor] = []
    for v, z in enumerate(views):
        s = saved[f"s{v}"]
        if v in kernel_w:
            grads.append(_kernel_gradient(plan, saved, v, z, s, kernel_w[v], beta[v]))
        else:
            # (expand_as: a broadcast per-row factor takes a much slower addcmul kernel on CPU)
            grads.append(z * beta[v][:, None].expand_as(z))
    for v, o, coefficient in other_terms:
        grads[v].addcmul_(views[o], coefficient[:, None].expand_as(views[o]))
    for i, j, coefficient in d_terms:
        # d recomputed block by block: the same exact subtraction as in the forward
        for rows, d in _difference_blocks(views[i], views[j]):
            factor = coefficient[rows, None].expand_as(d)
            grads[i][rows].addcmul_(d, factor)
            grads[j][rows].addcmul_(d, factor, value=-1.0)
    return (None, *grads)


def _kernel_gradient(
    plan: FusedPlan, saved: dict[str, Tensor], v: int, z: Tensor, s: Tensor, w: Tensor, beta: Tensor
) -> Tensor:
    """``w s (B X) − a w s² (rowsum B∘G) z + β z`` for the rows of view v, by blocks when asked.

    The β z and Jacobian terms ride along in the one product: z's own rows sit in the global
    batch, so adding them to B's own-column entries costs nothing."""
    columns, column_scales, active = saved[f"Z{v}"], saved[f"S{v}"], saved[f"a{v}"]
    step = z.shape[0] if plan.block_size is None else plan.block_size
    result = torch.empty_like(z)
    for start in range(0, z.shape[0], step):
        rows = slice(start, start + step)
        if plan.block_size is None:
            derivative = saved[f"B{v}"] * (w * s)[:, None]  # a copy: keeps retain_graph safe
            dot_gram = saved[f"dotgram{v}"]
        else:
            gram, _, block_derivative = _gram_block(plan, z[rows], s[rows], columns, column_scales, start, True)
            assert block_derivative is not None
            dot_gram = (block_derivative * gram).sum(dim=1)
            del gram
            derivative = block_derivative.mul_(column_scales[None, :]).mul_((w * s[rows])[:, None])
        own = torch.arange(derivative.shape[0], device=z.device)
        s_rows = s[rows]
        derivative[own, own + plan.offset + start] += beta[rows] - active[rows] * w * s_rows * s_rows * dot_gram
        torch.mm(derivative, columns, out=result[rows])
        del derivative
    return result


def fused_statistics(plan: FusedPlan, views: list[Tensor]) -> tuple[Tensor, Tensor]:
    """``(pair distances [P], kernel means [R])`` over the global batch (module docstring)."""
    return _FusedStatistics.apply(plan, *views)
