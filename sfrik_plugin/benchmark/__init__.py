"""Benchmark of SFRIK against VICReg and Barlow Twins through solo-learn, with the paper's protocol.

* :mod:`.splits` — per-class subsets and disjoint validation splits of any ImageFolder (symlink trees + file lists);
* :mod:`.runner` / :mod:`.worker` — resumable runs (one folder per method, setting, seed; ``done.json`` markers);
* :mod:`.evaluate` — linear probe, weighted kNN, semi-supervised fine-tuning on frozen/fine-tuned backbones;
* :mod:`.report` — mean ± std tables (markdown, CSV) and a plot;
* :mod:`.cli` — the ``sfrik-benchmark`` command.

Importing this package does not import solo-learn; only pretraining workers do.
"""
