"""The benchmark runner: one run directory per (method, hyper-parameter setting, seed), resumable.

Layout under the output folder::

    runs/<method>/<setting>/seed<k>/
        spec.json        what this run is (method, hydra overrides, seed, data); a mismatch is an error
        ckpt/            solo-learn checkpoints (one per epoch, the previous one removed)
        backbone.pt      the trained (or, for random init, untouched) backbone weights
        pretrain.json    wall time and peak memory of the pretraining attempts, final training metrics
        eval_val.json    linear probe and kNN on the validation split (hyper-parameter selection)
        done.json        marker: pretraining and validation evaluation finished
        eval_test.json   test-split evaluation (only for the chosen setting; marker of its own)

Each stage runs in a fresh worker process (``python -m sfrik_plugin.benchmark.worker``). A stage
whose marker exists is skipped; an interrupted pretraining restarts from the newest checkpoint in
``ckpt/``. Pretraining goes through the adapter (:func:`sfrik_plugin.solo.cli.run_pretrain`) with
the packaged ``custom/<method>`` configs and one shared list of overrides, so the methods differ
only in their ``method``/``method_kwargs`` block.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "RANDOM_INIT",
    "load_config",
    "setting_name",
    "setting_overrides",
    "Run",
    "tuning_runs",
    "final_runs",
    "select_settings",
    "is_done",
    "latest_checkpoint",
    "write_json",
    "read_json",
    "run_stage",
    "Benchmark",
]

RANDOM_INIT = "random_init"
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "fashion_mnist.yaml"


# --------------------------------------------------------------------------------------------
# config


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: os.PathLike | None = None, quick: bool = False) -> dict[str, Any]:
    """Reads a benchmark yaml; with ``quick`` its ``quick:`` block is merged over the rest."""
    import yaml

    path = Path(path) if path else DEFAULT_CONFIG
    if not path.exists() and (DEFAULT_CONFIG.parent / path.with_suffix(".yaml").name).exists():
        path = DEFAULT_CONFIG.parent / path.with_suffix(".yaml").name  # a packaged config by name
    cfg = yaml.safe_load(path.read_text())
    quick_block = cfg.pop("quick", {}) or {}
    if quick:
        cfg = _merge(cfg, quick_block)
    cfg["_source"] = str(path)
    cfg["_quick"] = bool(quick)
    return cfg


def _format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    return str(value)


def setting_name(setting: dict[str, Any]) -> str:
    """A stable, file-system-safe name of a hyper-parameter setting (``default`` when empty)."""
    if not setting:
        return "default"
    parts = []
    for key in sorted(setting):
        short = key.split(".")[-1]
        parts.append(f"{short}={_format_value(setting[key])}")
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", ",".join(parts))


def setting_overrides(setting: dict[str, Any]) -> list[str]:
    """Hydra overrides (``++key=value``) of a setting, in sorted key order."""
    return [f"++{key}={_format_value(setting[key])}" for key in sorted(setting)]


# --------------------------------------------------------------------------------------------
# the runs


class Run:
    """One (method, setting, seed) run and its directory."""

    def __init__(self, root: os.PathLike, method: str, setting: dict[str, Any], seed: int):
        self.method, self.setting, self.seed = method, dict(setting), int(seed)
        self.name = setting_name(self.setting)
        self.dir = Path(root) / "runs" / method / self.name / f"seed{self.seed}"

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.method, self.name, self.seed)

    def __repr__(self) -> str:
        return f"Run({self.method}, {self.name}, seed={self.seed})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Run) and self.dir == other.dir

    def __hash__(self) -> int:
        return hash(self.dir)


def method_grid(cfg: dict[str, Any], method: str) -> list[dict[str, Any]]:
    grid = cfg["methods"][method].get("grid") or [{}]
    return [dict(s or {}) for s in grid]


def tuning_runs(cfg: dict[str, Any], root: os.PathLike) -> list[Run]:
    """Every grid setting of every method, with the tuning seed (the random baseline is not tuned)."""
    seed = int(cfg.get("tune_seed", cfg["seeds"][0]))
    return [Run(root, m, s, seed) for m in cfg["methods"] for s in method_grid(cfg, m)]


def final_runs(cfg: dict[str, Any], root: os.PathLike, chosen: dict[str, dict[str, Any]]) -> list[Run]:
    """The random-initialisation baseline (cheap), then seed by seed the chosen setting of every
    method, so that an interrupted benchmark has the same seeds for every method."""
    runs = [Run(root, RANDOM_INIT, {}, seed) for seed in cfg["seeds"]] if cfg.get("random_init", True) else []
    return runs + [Run(root, m, chosen[m], seed) for seed in cfg["seeds"] for m in cfg["methods"]]


def select_settings(cfg: dict[str, Any], root: os.PathLike, metric: str = "linear") -> dict[str, dict[str, Any]]:
    """Per method, the grid setting with the best validation ``metric`` accuracy (ties: first in the
    grid). Raises if a tuning run has not finished."""
    chosen = {}
    for method in cfg["methods"]:
        best, best_acc = None, -math.inf
        for run in (r for r in tuning_runs(cfg, root) if r.method == method):
            result = read_json(run.dir / "eval_val.json")
            if result is None:
                raise RuntimeError(f"{run} has no validation result yet")
            acc = float(result[metric]["acc1"])
            if acc > best_acc:
                best, best_acc = run.setting, acc
        chosen[method] = best
    return chosen


# --------------------------------------------------------------------------------------------
# markers, checkpoints, stages


def write_json(path: os.PathLike, data: Any) -> None:
    """Atomic json write (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def read_json(path: os.PathLike) -> Any | None:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return None


STAGE_MARKERS = {"train": "done.json", "test": "eval_test.json"}


def is_done(run_dir: os.PathLike, stage: str = "train") -> bool:
    return read_json(Path(run_dir) / STAGE_MARKERS[stage]) is not None


def _epoch_of(path: Path) -> int:
    m = re.search(r"ep=(\d+)", path.name)
    return int(m.group(1)) if m else -1


def latest_checkpoint(run_dir: os.PathLike) -> Path | None:
    """The newest solo-learn checkpoint under ``run_dir/ckpt`` (highest epoch, then newest file), or None."""
    ckpts = [p for p in (Path(run_dir) / "ckpt").rglob("*.ckpt") if p.is_file() and p.stat().st_size > 0]
    if not ckpts:
        return None
    return max(ckpts, key=lambda p: (_epoch_of(p), p.stat().st_mtime))


def _check_spec(run_dir: Path, spec: dict[str, Any]) -> None:
    old = read_json(run_dir / "spec.json")
    if old is not None and old != json.loads(json.dumps(spec, sort_keys=True, default=str)):
        raise RuntimeError(
            f"{run_dir} was started with another specification; use another --out folder "
            f"(or delete that run) instead of mixing results.\nold: {old}\nnew: {spec}"
        )
    if old is None:
        write_json(run_dir / "spec.json", spec)


def run_stage(run_dir: os.PathLike, spec: dict[str, Any], stage: str, log=print, python: str | None = None) -> str:
    """Runs one stage of a run in a worker process unless its marker exists.

    Returns "skipped" or "done"; raises ``RuntimeError`` when the worker fails (its log is in
    ``run_dir/<stage>.log``)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_spec(run_dir, spec)
    if is_done(run_dir, stage):
        return "skipped"
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    cmd = [python or sys.executable, "-m", "sfrik_plugin.benchmark.worker", str(run_dir), stage]
    log_path = run_dir / f"{stage}.log"
    start = time.time()
    with open(log_path, "a") as logf:
        logf.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        logf.flush()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        try:
            code = proc.wait()
        except BaseException:  # Ctrl-C or kill of the runner: stop the worker too (resume restarts it)
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    if code != 0 or not is_done(run_dir, stage):
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"stage {stage!r} of {run_dir} failed (exit code {code}); log {log_path}:\n{tail}")
    log(f"  {stage:5s} {run_dir} ({time.time() - start:.0f} s)")
    return "done"


# --------------------------------------------------------------------------------------------
# the benchmark


class Benchmark:
    """Prepares the data, tunes on the validation split, evaluates the chosen settings on the test split."""

    def __init__(self, cfg: dict[str, Any], out: os.PathLike, log=print, python: str | None = None):
        self.cfg, self.out, self.log, self.python = cfg, Path(out), log, python
        self.data: dict[str, str] | None = None

    # data ------------------------------------------------------------------------------------
    def prepare_data(self) -> dict[str, str]:
        from ..data.splits import build_splits

        d = self.cfg["data"]
        per_class = {"train": d["train_per_class"], "val": d["val_per_class"]}
        if d.get("kind", "fashion_mnist") == "fashion_mnist":
            from ..data.fashion_mnist import FASHION_MNIST_DIR, prepare_fashion_mnist

            need = d["train_per_class"] + d["val_per_class"]
            root = Path(d.get("cache") or self.out / "data") / f"fashion-mnist-{need}-{d.get('test_per_class')}"
            src = prepare_fashion_mnist(
                root,
                train_per_class=need,
                val_per_class=d.get("test_per_class"),
                seed=0,
                source=d.get("source") or FASHION_MNIST_DIR,
            )
            source_train, test = src["train"], src["val"]
        else:
            source_train, test = Path(d["train_root"]), Path(d["test_root"])
        splits = build_splits(source_train, self.out / "splits", per_class)
        self.data = {"train": str(splits["train"]), "val": str(splits["val"]), "test": str(test)}
        write_json(self.out / "data.json", self.data)
        return self.data

    # specs -----------------------------------------------------------------------------------
    def spec(self, run: Run) -> dict[str, Any]:
        c = self.cfg
        spec = {
            "method": run.method,
            "setting": run.setting,
            "seed": run.seed,
            "data": self.data,
            "crop_size": c["crop_size"],
            "backbone": c["backbone"],
            "evaluation": c["evaluation"],
        }
        if run.method != RANDOM_INIT:
            spec["config"] = c["methods"][run.method]["config"]
            spec["overrides"] = (
                self.shared_overrides()
                + [f"max_epochs={int(c['epochs'])}"]
                + list(c["methods"][run.method].get("overrides", []))
                + setting_overrides(run.setting)
            )
        return spec

    def shared_overrides(self) -> list[str]:
        """Overrides every method gets: backbone and crop size from the top-level keys, then ``common_overrides``."""
        c = self.cfg
        out = [f"backbone.name={c['backbone']['name']}"]
        out += [
            f"++backbone.kwargs.{k}={_format_value(v)}" for k, v in sorted((c["backbone"].get("kwargs") or {}).items())
        ]
        out += [f"augmentations.{i}.crop_size={int(c['crop_size'])}" for i in range(int(c.get("num_views_configs", 2)))]
        return out + list(c["common_overrides"])

    def _stage(self, run: Run, stage: str) -> str:
        return run_stage(run.dir, self.spec(run), stage, log=self.log, python=self.python)

    # phases ----------------------------------------------------------------------------------
    def tune(self) -> dict[str, dict[str, Any]]:
        runs = tuning_runs(self.cfg, self.out)
        for i, run in enumerate(runs, 1):
            self.log(f"[tune {i}/{len(runs)}] {run}")
            self._stage(run, "train")
        chosen = select_settings(self.cfg, self.out)
        write_json(self.out / "chosen.json", chosen)
        for method, setting in chosen.items():
            self.log(f"chosen on the validation split: {method}: {setting_name(setting)}")
        return chosen

    def final(self, chosen: dict[str, dict[str, Any]]) -> list[Run]:
        runs = final_runs(self.cfg, self.out, chosen)
        for i, run in enumerate(runs, 1):
            self.log(f"[final {i}/{len(runs)}] {run}")
            self._stage(run, "train")
            self._stage(run, "test")
        return runs

    def run(self) -> dict[str, Any]:
        start = time.time()
        self.prepare_data()
        write_json(self.out / "benchmark_config.json", self.cfg)
        chosen = self.tune()
        runs = self.final(chosen)
        from .report import write_report

        report = write_report(self.out, runs, chosen=chosen, tuning=tuning_runs(self.cfg, self.out), cfg=self.cfg)
        self.log(f"benchmark finished in {time.time() - start:.0f} s (this invocation)")
        return report
