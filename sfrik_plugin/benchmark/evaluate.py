"""Evaluation of a frozen (or fine-tuned) backbone: linear probe, weighted kNN, semi-supervised fine-tuning.

* :func:`extract_features` runs a backbone over an ImageFolder (evaluation transform, no augmentation).
* :func:`linear_probe`: multinomial logistic regression on standardised frozen features, trained to
  convergence with full-batch L-BFGS (deterministic; no learning rate to tune).
* :func:`knn_classify`: weighted kNN on L2-normalised features — the ``k`` most cosine-similar
  training samples vote for their class with weight ``exp(similarity / T)``.
* :func:`semi_supervised`: fine-tunes a copy of the backbone and a linear head on a class-balanced
  fraction of the labels (the first ``ceil(fraction * n_c)`` images of each class in sorted order).

Only torch and torchvision are needed (no solo-learn).

Example:
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    >>> y = torch.tensor([0, 1, 0, 1])
    >>> knn_classify(x, y, x, y, k=1)["acc1"], linear_probe(x, y, x, y)["acc1"]
    (100.0, 100.0)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, classifier_train_transform, eval_transform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "eval_transform",
    "train_transform",
    "image_folder",
    "extract_features",
    "linear_probe",
    "knn_classify",
    "balanced_fraction",
    "semi_supervised",
]

# shared with the solo-learn launchers (sfrik_plugin.transforms, which needs no solo-learn)
train_transform = classifier_train_transform


def image_folder(path, transform):
    from torchvision.datasets import ImageFolder

    return ImageFolder(str(path), transform=transform)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def extract_features(
    backbone: nn.Module, dataset, batch_size: int = 256, num_workers: int = 0, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [N, D] float32 on the CPU, labels [N])`` of a dataset, in dataset order, backbone in eval mode."""
    device = torch.device(device) if device is not None else default_device()
    backbone = backbone.to(device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    was_training = backbone.training
    backbone.eval()
    feats, labels = [], []
    for images, targets in loader:
        feats.append(backbone(images.to(device, non_blocking=True)).float().flatten(1).cpu())
        labels.append(torch.as_tensor(targets))
    backbone.train(was_training)
    return torch.cat(feats), torch.cat(labels).long()


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    weight_decay: float = 1e-4,
    max_iter: int = 300,
    num_classes: int | None = None,
) -> dict[str, float]:
    """Top-1 accuracy (%) of an L2-regularised softmax classifier trained on frozen features.

    Features are standardised with the training mean and standard deviation. The objective
    (mean cross-entropy + ``weight_decay/2 * ||W||^2``) is convex, so the result does not depend
    on a seed or a learning-rate schedule.
    """
    train_x, test_x = train_x.double(), test_x.double()
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    n_cls = int(num_classes or int(max(train_y.max(), test_y.max())) + 1)
    W = torch.zeros(train_x.shape[1], n_cls, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_cls, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [W, b],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(train_x @ W + b, train_y) + 0.5 * weight_decay * (W * W).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        train_acc = ((train_x @ W + b).argmax(1) == train_y).double().mean().item() * 100
        test_acc = ((test_x @ W + b).argmax(1) == test_y).double().mean().item() * 100
    return {"acc1": test_acc, "train_acc1": train_acc}


def knn_classify(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    k: int = 20,
    T: float = 0.07,
    chunk: int = 1024,
) -> dict[str, float]:
    """Top-1 accuracy (%) of the temperature-weighted cosine kNN (weights ``exp(sim / T)``)."""
    train_x = F.normalize(train_x.float(), dim=1)
    test_x = F.normalize(test_x.float(), dim=1)
    n_cls = int(max(train_y.max(), test_y.max())) + 1
    k = min(k, train_x.shape[0])
    correct = 0.0
    for start in range(0, test_x.shape[0], chunk):
        sims = test_x[start : start + chunk] @ train_x.T
        top_sims, top_idx = sims.topk(k, dim=1)
        weights = (top_sims / T).exp()
        votes = torch.zeros(sims.shape[0], n_cls).scatter_add_(1, train_y[top_idx], weights)
        correct += (votes.argmax(1) == test_y[start : start + chunk]).sum().item()
    return {"acc1": 100.0 * correct / test_x.shape[0], "k": k, "T": T}


def balanced_fraction(labels: Sequence[int], fraction: float) -> list[int]:
    """Indices of the first ``ceil(fraction * n_c)`` samples of each class (dataset order), at least one."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    per_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        per_class.setdefault(int(y), []).append(i)
    chosen = []
    for y in sorted(per_class):
        idx = per_class[y]
        chosen += idx[: max(1, math.ceil(fraction * len(idx)))]
    return sorted(chosen)


def semi_supervised(
    backbone: nn.Module,
    train_dataset,
    test_dataset,
    fraction: float,
    num_classes: int,
    epochs: int = 20,
    batch_size: int = 64,
    lr_backbone: float = 0.01,
    lr_head: float = 0.1,
    weight_decay: float = 5e-4,
    seed: int = 0,
    num_workers: int = 0,
    device=None,
) -> dict[str, float]:
    """Fine-tunes a copy of ``backbone`` + a linear head on ``fraction`` of the labels of
    ``train_dataset`` (augmented) and returns the top-1 accuracy (%) on ``test_dataset``.

    SGD (momentum 0.9, cosine schedule), separate learning rates for the backbone and the head.
    ``backbone`` itself is not modified.
    """
    targets = getattr(train_dataset, "targets", None)
    if targets is None:
        targets = [train_dataset[i][1] for i in range(len(train_dataset))]
    idx = balanced_fraction(targets, fraction)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = copy.deepcopy(backbone)
    with torch.no_grad():
        if isinstance(getattr(model, "num_features", None), int):
            dim = int(model.num_features)  # type: ignore[arg-type]
        else:
            was_training = model.training
            model.eval()
            dim = model(test_dataset[0][0].unsqueeze(0).to(next(model.parameters()).device)).flatten(1).shape[1]
            model.train(was_training)
    head = nn.Linear(dim, num_classes)
    device = torch.device(device) if device is not None else default_device()
    net = nn.Sequential(model, nn.Flatten(1), head).to(device)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(train_dataset, idx),
        batch_size=min(batch_size, len(idx)),
        shuffle=True,
        drop_last=len(idx) > batch_size,
        generator=generator,
        num_workers=num_workers,
    )
    opt = torch.optim.SGD(
        [{"params": model.parameters(), "lr": lr_backbone}, {"params": head.parameters(), "lr": lr_head}],
        momentum=0.9,
        weight_decay=weight_decay,
    )
    steps = max(1, epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    net.train()
    for _ in range(epochs):
        for images, labels in loader:
            loss = F.cross_entropy(net(images.to(device)), torch.as_tensor(labels).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in torch.utils.data.DataLoader(test_dataset, batch_size=256, num_workers=num_workers):
            correct += (net(images.to(device)).argmax(1).cpu() == torch.as_tensor(labels)).sum().item()
            total += len(labels)
    return {"acc1": 100.0 * correct / total, "labels": len(idx), "fraction": fraction}
