"""Linear probe, weighted kNN and the label fractions of the semi-supervised evaluation."""

from __future__ import annotations

import pytest
import torch

from sfrik_plugin.benchmark.evaluate import balanced_fraction, knn_classify, linear_probe


def _blobs(n_per_class=30, classes=3, dim=8, spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:classes] * 3
    x = torch.cat([centres[c] + spread * torch.randn(n_per_class, dim, generator=g) for c in range(classes)])
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return x, y


def test_knn_weighted_vote_by_hand():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    query = torch.tensor([[0.6, 0.8]])  # closest to class 1, but two class-0 neighbours
    sims = torch.nn.functional.normalize(train, dim=1) @ torch.nn.functional.normalize(query, dim=1).T
    w = (sims.squeeze(1) / 0.07).exp()
    expected = 0 if w[0] + w[1] > w[2] else 1
    assert knn_classify(train, labels, query, torch.tensor([expected]), k=3, T=0.07)["acc1"] == 100.0
    # with T large every neighbour counts about the same: the majority (class 0) wins
    assert knn_classify(train, labels, query, torch.tensor([0]), k=3, T=100.0)["acc1"] == 100.0
    # k = 1 is the nearest neighbour
    assert knn_classify(train, labels, query, torch.tensor([1]), k=1)["acc1"] == 100.0


def test_knn_and_linear_probe_separate_blobs_and_fail_on_noise():
    x, y = _blobs()
    xt, yt = _blobs(seed=1)
    assert knn_classify(x, y, xt, yt, k=20)["acc1"] == 100.0
    probe = linear_probe(x, y, xt, yt)
    assert probe["acc1"] == 100.0 and probe["train_acc1"] == 100.0
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g)
    assert linear_probe(noise, y, torch.randn(xt.shape, generator=g), yt)["acc1"] < 60.0  # chance is 33 %


def test_linear_probe_is_deterministic_and_scale_invariant():
    x, y = _blobs(spread=2.0)
    xt, yt = _blobs(spread=2.0, seed=1)
    a = linear_probe(x, y, xt, yt)
    assert linear_probe(x, y, xt, yt) == a
    assert linear_probe(1000 * x + 5, y, 1000 * xt + 5, yt)["acc1"] == pytest.approx(a["acc1"])  # standardised


def test_balanced_fraction():
    labels = [0] * 10 + [1] * 30 + [2] * 5
    idx = balanced_fraction(labels, 0.1)
    assert idx == [0, 10, 11, 12, 40]  # ceil(1.0), ceil(3.0), ceil(0.5): the first ones of each class
    assert len(balanced_fraction(labels, 0.01)) == 3  # at least one label per class
    assert len(balanced_fraction(labels, 1.0)) == 45
    with pytest.raises(ValueError):
        balanced_fraction(labels, 0.0)
