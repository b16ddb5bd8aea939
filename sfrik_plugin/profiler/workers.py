"""What runs inside an isolated child: one loss step, or whole training steps, measured.

Both workers take a picklable ``spec`` dict and return a result dict with ``status`` ``"ok"``
(then ``samples``: seconds per measured call, ``peak_bytes`` and ``memory_kind``) or ``"oom"``;
any other error is reported by :func:`sfrik_plugin.profiler.isolation.run_isolated`. The result
also carries the worker's ``pid``, which shows that it ran in its own process.

solo-learn and Lightning are imported inside :func:`train_worker` only (through the adapter).

Example:
    >>> result = loss_worker(dict(contender="sfrik-gram", n=8, q=16, max_repeats=2))
    >>> result["status"], len(result["samples"])
    ('ok', 2)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ..contenders.overrides import solo_overrides
from ..contenders.registry import LossContender, TrainMethod, get_contender, get_train_method
from .isolation import is_out_of_memory, limit_address_space, quiet_child
from .measure import peak_memory_bytes, process_memory_bytes, reset_peak_rss, time_call
from .options import parse_dtype

__all__ = ["repeats_for", "loss_step", "loss_worker", "SyntheticBatches", "build_train_config", "train_worker"]


def repeats_for(first_seconds: float, spec: Mapping[str, Any]) -> int:
    """Measured repeats after a warm-up call that took ``first_seconds``: as many as fit in
    ``config_seconds``, between ``min_repeats`` and ``max_repeats`` (cheap calls get many repeats,
    so that their median resists machine noise; expensive ones few).

    Example:
        >>> repeats_for(0.01, {"min_repeats": 2, "max_repeats": 25, "config_seconds": 20})
        25
        >>> repeats_for(17.0, {"min_repeats": 2, "max_repeats": 25, "config_seconds": 20})
        2
    """
    minimum, maximum = int(spec.get("min_repeats", 2)), int(spec.get("max_repeats", 25))
    if maximum < minimum:
        raise ValueError(f"max_repeats ({maximum}) < min_repeats ({minimum})")
    budget = spec.get("config_seconds")
    if not budget or first_seconds <= 0:
        return maximum
    return max(minimum, min(maximum, int(budget // first_seconds)))


def loss_step(
    contender: str | LossContender, z1: Tensor, z2: Tensor, options: Mapping[str, Any] | None = None
) -> Callable[[], None]:
    """One forward + backward of ``contender``'s loss on the leaf tensors ``z1``, ``z2`` (their
    gradients are reset first, so every call allocates the same).

    Example:
        >>> z1, z2 = (torch.randn(8, 16, requires_grad=True) for _ in range(2))
        >>> loss_step("sfrik-gram", z1, z2)()
        >>> z1.grad.shape
        torch.Size([8, 16])
    """
    entry = contender if isinstance(contender, LossContender) else get_contender(contender)
    loss = entry.build_step(z1, z2, dict(options or {}))

    def step() -> None:
        z1.grad = z2.grad = None
        loss().backward()

    return step


def _loss_options(spec: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(spec.get("options") or {})
    if spec.get("block_size") is not None:
        options.setdefault("block_size", int(spec["block_size"]))
    return options


def loss_worker(spec: dict) -> dict:
    """Forward + backward of one loss contender at one (N, q): times and peak memory.

    ``spec`` keys: contender (a registered name, or a :class:`LossContender` itself, which reaches
    the child however it was registered), n, q, dtype, device, warmup, min_repeats, max_repeats,
    config_seconds, threads, seed, address_space_limit (bytes, CPU), log, block_size, options.
    On CPU ``peak_bytes`` is the exact tensor-allocation peak of the first (warm-up) call and
    ``rss_peak_bytes`` the resident-set peak above the inputs over all calls.
    """
    quiet_child(spec.get("log"))
    device = torch.device(spec.get("device", "cpu"))
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    n, q, dtype = int(spec["n"]), int(spec["q"]), parse_dtype(spec.get("dtype", "float32"))
    try:
        if device.type == "cpu":
            limit_address_space(spec.get("address_space_limit"))
        generator = torch.Generator(device="cpu").manual_seed(int(spec.get("seed", 0)))
        z1 = torch.randn(n, q, generator=generator).to(device=device, dtype=dtype).requires_grad_()
        z2 = torch.randn(n, q, generator=generator).to(device=device, dtype=dtype).requires_grad_()
        step = loss_step(spec["contender"], z1, z2, _loss_options(spec))

        before = process_memory_bytes()
        rss_reset = reset_peak_rss()
        result: dict[str, Any] = {"status": "ok", "pid": os.getpid()}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            allocated_before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            warmup = [time_call(step, device)]
        else:
            # the first warm-up call runs under the profiler: its tensor-allocation peak is the
            # CPU analogue of max_memory_allocated (the profiler's overhead only slows a warm-up)
            begin = time.perf_counter()
            result["alloc_peak_bytes"] = int(peak_memory_bytes(step, device))
            warmup = [time.perf_counter() - begin]
        warmup += [time_call(step, device) for _ in range(max(1, int(spec.get("warmup", 1))) - 1)]
        repeats = repeats_for(warmup[-1], spec)
        samples = [time_call(step, device) for _ in range(repeats)]
        result.update(samples=samples, warmup_s=warmup, threads=torch.get_num_threads())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            result["peak_bytes"] = int(torch.cuda.max_memory_allocated(device) - allocated_before)
            result["memory_kind"] = "cuda max_memory_allocated above the inputs"
        else:
            after = process_memory_bytes()
            result["rss_peak_bytes"] = max(0, after["peak_rss"] - before.get("rss", before["peak_rss"]))
            result["rss_peak_clean"] = rss_reset
            result["process_peak_rss_bytes"] = after["peak_rss"]  # the whole worker: torch, inputs, loss
            result["peak_bytes"] = result["alloc_peak_bytes"]
            result["memory_kind"] = "profiler tensor-allocation peak above the inputs"
        return result
    except BaseException as error:
        if is_out_of_memory(error):
            return {"status": "oom", "reason": f"out of memory: {str(error).splitlines()[0][:200]}", "pid": os.getpid()}
        raise


class SyntheticBatches(torch.utils.data.Dataset):
    """``steps`` copies of one batch in solo-learn's format ``(indexes, [view1, view2], targets)``.

    Example:
        >>> indexes, views, targets = SyntheticBatches(3, 4, 8, 10)[0]
        >>> len(views), tuple(views[0].shape)
        (2, (4, 3, 8, 8))
    """

    def __init__(self, steps: int, batch_size: int, image_size: int, num_classes: int, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.steps = steps
        self.batch = (
            torch.arange(batch_size),
            [torch.randn(batch_size, 3, image_size, image_size, generator=generator) for _ in range(2)],
            torch.randint(0, num_classes, (batch_size,), generator=generator),
        )

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        return self.batch


def _train_method(spec: Mapping[str, Any]) -> TrainMethod:
    method = spec["method"]
    return method if isinstance(method, TrainMethod) else get_train_method(method)


def build_train_config(spec: Mapping[str, Any]) -> Any:
    """The solo-learn pretraining config of one training-step profile: the packaged config
    ``<config_dataset>/<method's config>`` of the adapter with the widths, backbone and batch size
    of ``spec``, parsed by solo-learn's own ``parse_cfg`` the way the adapter's launcher does it."""
    from solo.args.pretrain import parse_cfg

    import sfrik_plugin.solo  # noqa: F401  (registers "sfrik" in solo-learn)
    from sfrik_plugin.solo.config import compose_config
    from sfrik_plugin.solo.launch import parse_with_devices

    method = _train_method(spec)
    dataset = spec.get("config_dataset", "cifar10")
    cuda = str(spec.get("device", "cpu")).startswith("cuda")
    setting = {
        "backbone": {"name": spec.get("backbone", "resnet18")},
        "projector": {"hidden": spec["hidden"], "q": spec["q"]},
        "batch_size": spec["batch_size"],
    }
    overrides = [
        *solo_overrides(setting),
        f"accelerator={'gpu' if cuda else 'cpu'}",
        "devices=1",
        "strategy=auto",
        "sync_batchnorm=False",
        f"precision={spec.get('precision', '16-mixed' if cuda else '32')}",
        "data.num_workers=0",
        "checkpoint.enabled=False",
        "auto_resume.enabled=False",
        "max_epochs=1",
        f"++performance.disable_channel_last={not cuda}",
        "wandb=off",
        *method.overrides,
    ]
    cfg = compose_config("pretrain", f"{dataset}/{method.config}", overrides)
    return parse_with_devices(cfg, parse_cfg)


def train_worker(spec: dict) -> dict:
    """Full training steps (backbone + projector + loss + optimiser step) of one method through
    the solo-learn adapter and a Lightning ``Trainer``, on synthetic images: step times and peak
    memory.

    ``spec`` keys: method (a registered name or a :class:`TrainMethod`), q, hidden, batch_size,
    image_size, backbone, device, precision, warmup, min_repeats, max_repeats, config_seconds,
    threads, address_space_limit, log, config_dataset, seed.
    """
    quiet_child(spec.get("log"))
    device = torch.device(spec.get("device", "cpu"))
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    try:
        if device.type == "cpu":
            limit_address_space(spec.get("address_space_limit"))
        from lightning.pytorch import Callback, Trainer, seed_everything
        from solo.methods import METHODS

        cfg = build_train_config(spec)
        seed_everything(int(spec.get("seed", 0)))
        model = METHODS[cfg.method](cfg)
        warmup = max(1, int(spec.get("warmup", 1)))
        max_repeats = int(spec.get("max_repeats", 3))

        class StepTimer(Callback):
            """Times each whole step (forward, loss, backward, optimiser) and tracks peak memory."""

            def __init__(self) -> None:
                self.times: list[float] = []
                self.target = warmup + max_repeats
                self.start = 0.0

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if batch_idx == warmup:  # measurement starts: clean peaks
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                        torch.cuda.reset_peak_memory_stats(device)
                    else:
                        reset_peak_rss()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                self.start = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                self.times.append(time.perf_counter() - self.start)
                if batch_idx == warmup - 1:
                    self.target = warmup + repeats_for(self.times[-1], spec)
                if len(self.times) >= self.target:
                    trainer.should_stop = True

        timer = StepTimer()
        steps = warmup + max_repeats
        trainer = Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=[device.index or 0] if device.type == "cuda" else 1,
            precision=cfg.precision,
            max_steps=steps,
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=[timer],
        )
        data = SyntheticBatches(
            steps, int(spec["batch_size"]), int(spec.get("image_size", 32)), int(cfg.data.num_classes)
        )
        loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=0)
        trainer.fit(model, train_dataloaders=loader)

        samples = timer.times[warmup:]
        if not samples:
            raise RuntimeError(f"no measured step (ran {len(timer.times)} steps)")
        result: dict[str, Any] = {
            "status": "ok",
            "pid": os.getpid(),
            "samples": samples,
            "warmup_s": timer.times[:warmup],
            "threads": torch.get_num_threads(),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "precision": str(cfg.precision),
        }
        if device.type == "cuda":
            result["peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
            result["memory_kind"] = "cuda max_memory_allocated (whole step, weights included)"
        else:
            result["peak_bytes"] = int(process_memory_bytes()["peak_rss"])
            result["memory_kind"] = "peak resident set of the process during the measured steps"
        return result
    except BaseException as error:
        if is_out_of_memory(error):
            return {"status": "oom", "reason": f"out of memory: {str(error).splitlines()[0][:200]}", "pid": os.getpid()}
        raise
