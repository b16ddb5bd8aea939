"""Benchmark of SFRIK against VICReg and Barlow Twins through solo-learn, with the paper's protocol,
and the q-sweep that measures accuracy per unit of compute as q grows.

* :mod:`.config` — benchmark yaml files, ``--set key=value`` (OmegaConf dot-list), checks;
* :mod:`.plan` — the runs and their folders; :mod:`.tuning` — selection with grid extension;
* :mod:`.sweep` — the q-sweep plan (equal epochs, equal time); :mod:`.budget` — the memory rule;
* :mod:`.runner` — the phases; :mod:`.stages` / :mod:`.worker` — one resumable stage per process;
* :mod:`.evaluate` — linear probe, weighted kNN, semi-supervised fine-tuning;
* :mod:`.report` / :mod:`.sweep_report` — tables; :mod:`.analysis` — Pareto fronts and summary;
  :mod:`.plots` — figures; :mod:`.backbones` — the small CPU backbone;
* :mod:`.cli` — the ``sfrik-benchmark`` command.

Importing this package does not import solo-learn; only pretraining workers do.

Example::

    sfrik-benchmark --sweep --out bench-runs/sweep
"""
