"""Unlabelled rows for every method the launchers train: the online classifier learns from the
labelled rows only, and from nothing (a zero loss, not NaN) when a batch has none.

solo-learn's ``BaseMethod`` trains an online linear classifier next to every method with
``cross_entropy(..., ignore_index=-1)``. On a folder without labels (``data.no_labels=true``,
every target ``-1``) that mean over zero rows is ``0 / 0 = NaN``: the total loss is NaN, the
classifier's weights become NaN after the first step, and the reported accuracies count the
unlabelled rows as wrong.

:func:`label_masked` returns a subclass of a solo-learn method class (SFRIK, VICReg, Barlow Twins,
any entry of ``solo.methods.METHODS``) whose classifier losses and accuracies are means over the
labelled rows only, with the count clamped to 1, so an all-unlabelled batch gives loss 0 with zero
gradient and no host synchronisation (no ``.item()``, no data-dependent branch). On fully
labelled batches the values are solo-learn's exactly. The launchers build their model with it;
``solo.methods.METHODS`` itself is left untouched, so solo-learn's own scripts keep getting
solo-learn's classes.

Example:
    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    >>> loss, acc1, _ = masked_classifier_metrics(logits, torch.tensor([0, 0, -1]), top_k=(1, 2))
    >>> round(float(loss), 4), float(acc1)  # row 2 (unlabelled) counts nowhere
    (1.5878, 50.0)
    >>> loss, acc1, _ = masked_classifier_metrics(logits, torch.tensor([-1, -1, -1]), top_k=(1, 2))
    >>> float(loss), float(acc1)  # nothing to learn from: zero, not NaN
    (0.0, 0.0)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["UNLABELLED", "masked_classifier_metrics", "label_masked"]

#: the target solo-learn's datasets give an image without a label
UNLABELLED = -1


def masked_classifier_metrics(
    logits: torch.Tensor, targets: torch.Tensor, top_k: Sequence[int] = (1, 5)
) -> tuple[torch.Tensor, ...]:
    """``(loss, acc@k for each k)`` of a classifier over the labelled rows (target != -1) only.

    The cross-entropy is the mean over labelled rows and the accuracies are percentages of the
    labelled rows; with no labelled row all are 0 (the loss still in the autograd graph, with a
    zero gradient). Nothing here waits for the device.
    """
    labelled = targets != UNLABELLED
    count = labelled.sum().clamp_min(1)
    safe_targets = torch.where(labelled, targets, torch.zeros_like(targets))
    per_row = F.cross_entropy(logits, safe_targets, reduction="none")
    loss = (per_row * labelled).sum() / count
    with torch.no_grad():
        ranked = logits.topk(max(top_k), dim=1).indices
        hits = (ranked == safe_targets[:, None]) & labelled[:, None]
        accuracies = [hits[:, :k].any(dim=1).sum() * (100.0 / count) for k in top_k]
    return (loss, *accuracies)


class _LabelMasked:
    """Mixin: solo-learn's classifier steps with :func:`masked_classifier_metrics` (see the module)."""

    def __reduce__(self):
        # the subclass is made at run time: pickle (e.g. Lightning's ddp_spawn) rebuilds it from
        # the solo-learn class it wraps, which pickle can find by name
        return (_rebuild, (type(self).__mro__[2], self.__getstate__()))

    def _base_shared_step(self, X: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        out = self(X)  # type: ignore[operator]
        logits = out["logits"]
        loss, acc1, acc5 = masked_classifier_metrics(logits, targets, top_k=(1, min(5, logits.size(1))))
        out.update({"loss": loss, "acc1": acc1, "acc5": acc5})
        return out

    def _shared_step_momentum(self, X: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        out = self.momentum_forward(X)  # type: ignore[attr-defined]
        classifier = self.momentum_classifier  # type: ignore[attr-defined]
        if classifier is not None:
            logits = classifier(out["feats"])
            loss, acc1, acc5 = masked_classifier_metrics(logits, targets, top_k=(1, min(5, logits.size(1))))
            out.update({"logits": logits, "loss": loss, "acc1": acc1, "acc5": acc5})
        return out


def _rebuild(method_class: type, state: dict) -> Any:
    masked: Any = label_masked(method_class)  # a class: Any keeps mypy off type.__new__'s overloads
    model = masked.__new__(masked)
    model.__setstate__(state)
    return model


@functools.cache
def label_masked(method_class: type) -> type:
    """``method_class`` with its online classifier (and a momentum method's momentum classifier)
    trained on labelled rows only: one subclass per class, same name; ``METHODS`` is not changed.

    Example:
        >>> import torch.nn as nn
        >>> Masked = label_masked(nn.Module)
        >>> Masked.__name__, issubclass(Masked, nn.Module), label_masked(nn.Module) is Masked
        ('Module', True, True)
    """
    return type(method_class.__name__, (_LabelMasked, method_class), {"__doc__": method_class.__doc__})
