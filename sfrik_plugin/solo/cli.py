"""Console entry points: ``sfrik-pretrain``, ``sfrik-linear``, ``sfrik-knn``.

They read hydra configs exactly as solo-learn users write them (``--config-name`` of a packaged
config or ``--config-path DIR --config-name NAME`` of your own, then ``key=value`` overrides), print
``[sfrik]`` progress lines from rank zero only with the known upstream warnings silenced, and end
bad input with one line and exit status 2. Every process registers SFRIK first, so Lightning's DDP
(several GPUs or CPU processes, several nodes via ``num_nodes``) finds the method in each process.

Without installation: ``python -m sfrik_plugin.solo.cli {pretrain,linear,knn} [hydra args]``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from ..console import exit_on_input_error, quiet_upstream_warnings, setup_console
from ..interrupts import Interrupted, exit_on_interrupt, watching_interrupts
from .launch import general_help, names_a_config, no_config_message, rewrite_argv

__all__ = ["pretrain", "linear", "knn", "main"]

_COMMAND_ENV = "SFRIK_SOLO_CLI_COMMAND"


def _launch(kind: str, flow: Callable[[Any], Any]) -> None:
    import hydra

    quiet_upstream_warnings()
    setup_console()
    prog = f"sfrik-{kind}"
    with exit_on_input_error(prog):
        argv = rewrite_argv(sys.argv[1:], kind)
    overview = general_help(argv, kind)  # --help without a config: configs named as --config-name takes them
    if overview is not None:
        print(overview)
        return
    if not names_a_config(argv):
        sys.exit(no_config_message(kind))
    from . import register

    register()
    # Lightning re-runs sys.argv for each DDP process it starts: keep the rewritten form there
    sys.argv[1:] = argv

    def task(cfg: Any) -> None:
        setup_console()  # again: hydra's logging set-up has just run
        with exit_on_input_error(prog):  # inside hydra's job: hydra would print a traceback
            flow(cfg)

    # Ctrl-C / SIGTERM: one line naming the last complete checkpoint, exit 130 / 143 (never 0)
    describe = (
        describe_interrupt if kind != "knn" else (lambda error: "nothing was written; run the same command again")
    )
    with exit_on_interrupt(prog, describe), watching_interrupts():
        hydra.main(version_base="1.2", config_path=None, config_name=None)(task)()


def describe_interrupt(error: Interrupted) -> str:
    """What the launchers say after Ctrl-C or SIGTERM: where training stopped, what is kept, how to go on.

    Example:
        >>> import signal
        >>> describe_interrupt(Interrupted(signal.SIGINT, "stopped in epoch 2/5, step 7; last complete checkpoint: a.ckpt"))
        'stopped in epoch 2/5, step 7; last complete checkpoint: a.ckpt; run the same command again to resume'
    """
    where = error.detail or "stopped before any checkpoint was written"
    return f"{where}; run the same command again to resume"


def pretrain() -> None:
    """``sfrik-pretrain --config-name cifar10/sfrik [key=value ...]``"""
    from .pretrain import run_pretrain

    _launch("pretrain", run_pretrain)


def linear() -> None:
    """``sfrik-linear --config-name cifar10 pretrained_feature_extractor=PATH [--trust-pickle] [key=value ...]``"""
    from .linear import run_linear

    _launch("linear", run_linear)


def knn() -> None:
    """``sfrik-knn --config-name knn pretrained_checkpoint_dir=DIR data.train_path=... data.val_path=...``"""
    from .knn import run_knn

    _launch("knn", run_knn)


_COMMANDS = {"pretrain": pretrain, "linear": linear, "knn": knn}


def main() -> None:
    """``python -m sfrik_plugin.solo.cli {pretrain,linear,knn} [hydra args]``.

    The sub-command is removed from ``sys.argv`` (hydra must not see it) and remembered in an
    environment variable, which the processes Lightning starts for DDP inherit.
    """
    if len(sys.argv) > 1 and sys.argv[1] in _COMMANDS:
        command = sys.argv.pop(1)
        os.environ[_COMMAND_ENV] = command
    else:
        command = os.environ.get(_COMMAND_ENV, "")
    if command not in _COMMANDS:
        sys.exit("usage: python -m sfrik_plugin.solo.cli {pretrain,linear,knn} --config-name NAME [key=value ...]")
    _COMMANDS[command]()


if __name__ == "__main__":
    main()
