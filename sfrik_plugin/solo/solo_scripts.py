"""``sfrik-solo``: solo-learn's own scripts with SFRIK registered, on one process and under DDP.

A solo-learn user keeps their habits: the scripts of their solo-learn checkout
(``main_pretrain.py``, ``main_linear.py``, ``main_knn.py``), their configs, their command lines,
with ``sfrik-solo`` in front::

    sfrik-solo main_pretrain.py --config-path scripts/pretrain/custom --config-name sfrik.yaml devices=2

``main_pretrain.py`` only knows the methods in ``solo.methods.METHODS`` of its own process, and
Lightning's DDP starts every other rank by re-running ``sys.argv`` (``sys.executable`` +
``sys.argv[0]``, or ``-m`` + the main module). So the wrapper

1. takes the script off the command line and keeps its absolute path in the environment variable
   ``SFRIK_SOLO_SCRIPT``; it stays ``sys.argv[0]`` itself, so the ranks Lightning starts run
   ``sfrik-solo`` again (with the same overrides plus hydra's run-folder ones) and find the script
   in the environment they inherit;
2. registers every method this project adds (:func:`sfrik_plugin.solo.register`);
3. puts the script's folder first on ``sys.path`` (as ``python script.py`` does) and runs the file
   as the main program: its own ``if __name__ == "__main__": main()`` calls ``main()``. Hydra sees
   the script's file, so a relative ``--config-path`` is resolved against the script's folder, as
   when solo-learn's scripts run on their own.

Nothing of solo-learn is changed: the scripts run as written, with solo-learn's checkpointer (it
writes in place), ``main_linear.py``'s plain ``torch.load``, ``main_knn.py``'s ``.cuda()`` calls.
The solo-learn package they use is the installed one (``sfrik_plugin.solo`` imports it first); a
``solo/`` folder beside the script is a different copy, and the wrapper says so.

Without installation: ``python -m sfrik_plugin.solo.solo_scripts main_pretrain.py [args]``.

Example:
    >>> script_from_argv(["main_knn.py", "--k", "5"], environ={}, is_file=lambda p: True)[1]
    ['--k', '5']
"""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path

from ..console import InputError, exit_on_input_error, get_logger, quiet_upstream_warnings, setup_console

__all__ = ["SCRIPT_ENV", "script_from_argv", "run_script", "main"]

log = get_logger(__name__)

#: where the first process leaves the script's absolute path for the DDP ranks Lightning starts
SCRIPT_ENV = "SFRIK_SOLO_SCRIPT"

_USAGE = (
    "usage: sfrik-solo SCRIPT.py [the script's own arguments], e.g. "
    "`sfrik-solo main_pretrain.py --config-path scripts/pretrain/custom --config-name sfrik.yaml` "
    "(solo-learn's main_pretrain.py, main_linear.py or main_knn.py from a solo-learn checkout)"
)


def script_from_argv(
    argv: Sequence[str],
    environ: MutableMapping[str, str] | None = None,
    is_file: Callable[[str], bool] = os.path.isfile,
) -> tuple[Path, list[str]]:
    """``(script, the script's arguments)`` from ``sfrik-solo``'s arguments.

    A first argument ending in ``.py`` is the script (its absolute path is stored in
    ``environ[SCRIPT_ENV]``); otherwise this is a process Lightning started for another DDP rank,
    and the script comes from ``environ``. Raises :class:`~sfrik_plugin.console.InputError` (one
    line) for a missing script.
    """
    environ = os.environ if environ is None else environ
    args = list(argv)
    if args and args[0].endswith(".py"):
        if not is_file(args[0]):
            raise InputError(f"no script {args[0]!r}: give the path of a solo-learn script, e.g. main_pretrain.py")
        script = os.path.abspath(args.pop(0))
        environ[SCRIPT_ENV] = script
        return Path(script), args
    stored = environ.get(SCRIPT_ENV)
    if not stored:
        raise InputError(_USAGE)
    if not is_file(stored):
        raise InputError(f"{SCRIPT_ENV}={stored!r} is not a file: start with `sfrik-solo SCRIPT.py ...`")
    return Path(stored), args


def _say_which_solo(script: Path) -> None:
    """One line when the script's folder holds a ``solo/`` package other than the one imported."""
    import solo

    beside = script.parent / "solo"
    imported = Path(solo.__file__).resolve().parent
    if (beside / "__init__.py").is_file() and beside.resolve() != imported:
        log.info(
            "running %s with the installed solo-learn (%s), not the copy in %s; `pip install -e %s` makes them one",
            script.name,
            imported,
            beside,
            script.parent,
        )


def run_script(script: Path) -> None:
    """Registers this project's methods, then runs ``script`` as the main program (its folder first
    on ``sys.path``, ``sys.argv[0]`` left alone so that DDP ranks re-run the wrapper)."""
    from . import register

    register()
    _say_which_solo(script)
    code = compile(script.read_bytes(), str(script), "exec")
    sys.path.insert(0, str(script.parent))
    namespace = {
        "__name__": "__main__",
        "__file__": str(script),
        "__builtins__": builtins,
        "__package__": None,
        "__spec__": None,
        "__loader__": None,
        "__cached__": None,
        "__doc__": None,
    }
    exec(code, namespace)


def main() -> None:
    """``sfrik-solo SCRIPT.py [args]``: the console entry point."""
    quiet_upstream_warnings()
    setup_console()
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(_USAGE)
        print(f"The script runs unchanged, as the main program; DDP ranks find it in {SCRIPT_ENV}.")
        print("`sfrik-solo SCRIPT.py --help`: the script's own help.")
        return
    with exit_on_input_error("sfrik-solo"):
        script, args = script_from_argv(sys.argv[1:])
    sys.argv[1:] = args  # the script (hydra or argparse) sees its own arguments only
    run_script(script)


if __name__ == "__main__":
    main()
