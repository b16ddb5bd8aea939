"""The benchmark runner: data, tuning with grid extension, final runs over seeds, and the q-sweep.

:class:`Benchmark` drives the phases, each a list of runs (:mod:`.plan`) whose stages run in worker
processes (:mod:`.stages`):

1. data: the train / validation / test splits (symlink trees, nothing copied);
2. tuning: every grid setting with every tuning seed; the grid is extended past an edge that wins
   (:mod:`.tuning`); selection by the mean validation accuracy;
3. final: the random-init baseline and the chosen setting of every method, every seed, on the test
   split (linear probe, kNN, semi-supervised fine-tuning);
4. sweep (``--sweep``): every method at every q of ``sweep.qs`` with one seed, at equal epochs and
   at equal time (:mod:`.sweep`); the reference-q point is a final run.

Before a run starts, its memory is predicted and compared with the budget (:mod:`.budget`); a run
that does not fit is recorded as such (``fit.json``) and never started. Every phase is resumable:
finished stages are skipped, an interrupted pretraining continues from its last checkpoint, and the
tuning state is recomputed from the finished validation results. A failed sweep run (e.g. killed
for memory) is recorded in ``failed.json`` and the sweep goes on; re-running retries it.

Example::

    bench = Benchmark(load_config(), "bench-runs/full")
    bench.run(sweep=True)     # then report.write_report / sweep_report.write_sweep_report
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..console import InputError, get_logger
from ..contenders.overrides import solo_overrides
from ..files.records import read_json, write_json
from .budget import benchmark_budget, fit_check
from .plan import RANDOM_INIT, Run, final_runs, setting_name, setting_overrides, tune_seeds
from .stages import StageFailed, check_spec, is_done, run_stage
from .sweep import equal_time_budget, equal_time_run, reference_q, sweep_qs, sweep_run
from .tuning import method_state

__all__ = ["Benchmark"]

log = get_logger(__name__)


class Benchmark:
    """The phases of one benchmark in one output folder (module docstring).

    ``memory_budget``: overrides the config's ``memory_budget`` (e.g. ``"16GiB"``); ``python``: the
    interpreter of the workers (default: this one).
    """

    def __init__(
        self,
        cfg: Mapping[str, Any],
        out: str | os.PathLike,
        python: str | None = None,
        memory_budget: str | None = None,
    ):
        self.cfg, self.out, self.python = dict(cfg), Path(out), python
        self.budget = benchmark_budget(cfg, memory_budget)
        self.data: dict[str, Any] | None = None

    # data --------------------------------------------------------------------------------------
    def prepare_data(self) -> dict[str, Any]:
        """Builds (or reuses) the splits; returns ``{"train", "val", "test", "n_train"}``."""
        from ..data.splits import build_splits

        d = self.cfg["data"]
        per_class: dict[str, int | None] = {"train": int(d["train_per_class"]), "val": int(d["val_per_class"])}
        if d["kind"] == "fashion_mnist":
            from ..data.fashion_mnist import prepare_fashion_mnist
            from ..data.fashion_mnist_sources import fashion_mnist_source

            source = fashion_mnist_source(d.get("source"), option="--set data.source")
            need = int(d["train_per_class"]) + int(d["val_per_class"])
            test_per_class = d.get("test_per_class")
            root = Path(d.get("cache") or self.out / "data") / f"fashion-mnist-{need}-{test_per_class}"
            prepared = prepare_fashion_mnist(
                root, train_per_class=need, val_per_class=test_per_class, seed=0, source=source
            )
            source_train, test = Path(prepared["train"]), Path(prepared["val"])
        else:
            source_train, test = Path(d["train_root"]).expanduser(), Path(d["test_root"]).expanduser()
            for key, folder in (("train_root", source_train), ("test_root", test)):
                if not folder.is_dir():
                    raise InputError(
                        f"data.{key}={folder} is not a directory; give an ImageFolder (--set data.{key}=/path)"
                    )
        splits = build_splits(source_train, self.out / "splits", per_class)
        stamp = read_json(self.out / "splits" / "splits.json") or {}
        n_train = int(stamp.get("splits", {}).get("train", {}).get("images", 0))
        self.data = {"train": str(splits["train"]), "val": str(splits["val"]), "test": str(test), "n_train": n_train}
        write_json(self.out / "data.json", self.data)
        return self.data

    # specs ---------------------------------------------------------------------------------------
    def q_of(self, run: Run) -> int:
        return run.q if run.q is not None else reference_q(self.cfg)

    def shared_overrides(self, q: int) -> list[str]:
        """Overrides every method gets: backbone, crop size, projector widths, batch size, then
        ``common_overrides`` (:func:`sfrik_plugin.contenders.overrides.solo_overrides`)."""
        return solo_overrides(self.cfg, q=q)

    def schedule_overrides(self, run: Run) -> list[str]:
        """``max_epochs`` (the config's epochs), or for a step budget the epochs it spans and ``max_steps``."""
        if run.steps is None:
            return [f"max_epochs={int(self.cfg['epochs'])}"]
        assert self.data is not None
        per_epoch = int(self.data["n_train"]) // int(self.cfg["batch_size"])
        if per_epoch < 1:
            raise InputError(
                f"batch_size={self.cfg['batch_size']} is larger than the {self.data['n_train']} training images"
            )
        return [f"max_epochs={math.ceil(run.steps / per_epoch)}", f"++max_steps={run.steps}"]

    def spec(self, run: Run) -> dict[str, Any]:
        """Everything a worker needs to run ``run`` (also what ties the run folder to its settings)."""
        if self.data is None:
            self.prepare_data()
        c = self.cfg
        spec: dict[str, Any] = {
            "method": run.method,
            "setting": run.setting,
            "seed": run.seed,
            "data": self.data,
            "crop_size": c["crop_size"],
            "backbone": c["backbone"],
            "evaluation": c["evaluation"],
        }
        if run.method != RANDOM_INIT:
            spec["q"] = self.q_of(run)
            spec["steps"] = run.steps
            spec["config"] = c["methods"][run.method]["config"]
            spec["overrides"] = (
                self.shared_overrides(self.q_of(run))
                + self.schedule_overrides(run)
                + list(c["methods"][run.method].get("overrides") or [])
                + setting_overrides(run.setting)
            )
        return spec

    # one run --------------------------------------------------------------------------------------
    def verdict(self, run: Run) -> dict[str, Any]:
        """The memory verdict of a run, kept in ``fit.json``. A run that was started keeps its
        verdict; one that did not fit is judged again (a larger ``--memory-budget`` lets it run)."""
        if run.method == RANDOM_INIT:
            return {"fits": True, "reason": "random init: no pretraining"}
        path = run.dir / "fit.json"
        old = read_json(path)
        started = (run.dir / "attempts.json").exists() or is_done(run.dir, "train")
        if old is not None and old.get("fits") and started:
            return old
        verdict = fit_check(self.cfg, run.method, self.q_of(run), self.budget)
        if verdict != old:
            write_json(path, verdict)
        return verdict

    def execute(self, run: Run, stages: Sequence[str] = ("train",)) -> str:
        """Runs ``stages`` of ``run`` in one worker unless they are finished or the run does not fit:
        ``"done"``, ``"skipped"`` (finished before) or ``"does not fit"`` (never started)."""
        spec = self.spec(run)
        verdict = self.verdict(run)
        if not verdict["fits"]:
            run.dir.mkdir(parents=True, exist_ok=True)
            check_spec(run.dir, spec)
            log.info("  not run: %s — %s", run, verdict["reason"])
            return "does not fit"
        return run_stage(run.dir, spec, stages, python=self.python)

    # phases ---------------------------------------------------------------------------------------
    def tune_method(self, method: str) -> tuple[dict[str, Any] | None, str]:
        """Runs what the selection of ``method`` needs; returns ``(chosen setting or None, note)``."""
        while True:
            state = method_state(self.cfg, self.out, method)
            if not state.pending:
                return state.chosen, state.note
            for setting in state.pending:
                for seed in tune_seeds(self.cfg):
                    run = Run(self.out, method, setting, seed)
                    log.info("[tune] %s", run)
                    if self.execute(run) == "does not fit":
                        return None, f"nothing to tune: {self.verdict(run)['reason']}"

    def tune(self) -> dict[str, dict[str, Any] | None]:
        """Tunes every method (grid extension included); returns the chosen settings (None: nothing fitted)."""
        chosen: dict[str, dict[str, Any] | None] = {}
        for method in self.cfg["methods"]:
            chosen[method], note = self.tune_method(method)
            picked = "none" if chosen[method] is None else setting_name(chosen[method] or {})
            log.info("chosen on the validation split: %s: %s (%s)", method, picked, note)
        write_json(self.out / "chosen.json", chosen)
        return chosen

    def final(self, chosen: Mapping[str, dict[str, Any] | None]) -> list[Run]:
        """Test-split evaluation of the random baseline and every chosen setting, seed by seed."""
        runs = final_runs(self.cfg, self.out, chosen)
        stages = ["train", "test"]
        if (self.cfg.get("evaluation") or {}).get("semi_supervised"):
            stages.append("semi")
        for i, run in enumerate(runs, 1):
            log.info("[final %d/%d] %s", i, len(runs), run)
            self.execute(run, stages)
        return runs

    def sweep_point(self, run: Run) -> str:
        """Pretrains and tests one sweep run; a failure is recorded in ``failed.json`` and the sweep goes on."""
        failed = run.dir / "failed.json"
        if failed.exists():
            failed.unlink()  # re-running retries it
        try:
            return self.execute(run, ("train", "test"))
        except StageFailed as error:
            write_json(failed, {"stage": error.stage, "exit_code": error.code, "log": str(error.log_path)})
            log.warning("%s failed in stage %s (exit code %s); see %s", run, error.stage, error.code, error.log_path)
            return "failed"

    def sweep(self, chosen: Mapping[str, dict[str, Any] | None]) -> None:
        """Equal-epoch runs at every q, then equal-time runs (:mod:`.sweep`)."""
        qs = sweep_qs(self.cfg)
        methods = [m for m in self.cfg["methods"] if chosen.get(m) is not None]
        for q in qs:
            for method in methods:
                run = sweep_run(self.cfg, self.out, method, chosen[method] or {}, q)
                log.info("[sweep q=%d, equal epochs] %s", q, run)
                self.sweep_point(run)
        for q in qs:
            budget_s, how = equal_time_budget(self.cfg, self.out, chosen, q)
            log.info("[sweep q=%d, equal time] budget: %s", q, how)
            if budget_s is None:
                continue
            for method in methods:
                eq_run, note = equal_time_run(self.cfg, self.out, method, chosen[method] or {}, q, budget_s)
                log.info("[sweep q=%d, equal time] %s: %s", q, method, note)
                if eq_run is not None:
                    self.sweep_point(eq_run)

    def run(self, sweep: bool = False, command: Sequence[str] | None = None) -> dict[str, Any]:
        """All phases (the sweep only with ``sweep``); returns the reports (:mod:`.report`, :mod:`.sweep_report`)."""
        from .report import write_report
        from .sweep_report import write_sweep_report

        start = time.time()
        self.prepare_data()
        write_json(self.out / "benchmark_config.json", self.cfg)
        self._record_invocation(command, sweep)
        chosen = self.tune()
        self.final(chosen)
        reports = {"main": write_report(self.out, self.cfg)}
        if sweep:
            self.sweep(chosen)
            reports["sweep"] = write_sweep_report(self.out, self.cfg, budget_rule=self.budget[1])
        log.info("benchmark finished in %.0f s (this invocation)", time.time() - start)
        return reports

    def _record_invocation(self, command: Sequence[str] | None, sweep: bool) -> None:
        history = read_json(self.out / "invocations.json") or []
        history.append(
            {
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": list(command or []),
                "sweep": sweep,
                "memory_budget": self.budget[1],
            }
        )
        write_json(self.out / "invocations.json", history)
