"""What the command-line tools print: upstream noise hidden (and only it), logs from rank zero."""

from __future__ import annotations

import io
import logging
import logging.config
import warnings

import pytest

from sfrik_plugin.console import (
    UPSTREAM_WARNINGS,
    InputError,
    exit_on_input_error,
    get_logger,
    is_rank_zero,
    quiet_upstream_warnings,
    setup_console,
)

EXAMPLES = [
    (FutureWarning, "Importing from timm.models.layers is deprecated, please import via timm.layers"),
    (UserWarning, "Overwriting convnext_tiny in registry with solo.backbones.convnext.convnext.convnext_tiny."),
    (DeprecationWarning, "Deprecated call to `pkg_resources.declare_namespace('lightning')`."),
    (FutureWarning, "`torch.cuda.amp.custom_fwd(args...)` is deprecated. Please use `torch.amp.custom_fwd(...)`"),
    (DeprecationWarning, "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`"),
    (DeprecationWarning, "pkg_resources is deprecated as an API. See https://setuptools.pypa.io/"),
    (UserWarning, "pkg_resources is deprecated as an API. See https://setuptools.pypa.io/"),
]


def _shown(category, message) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_upstream_warnings()
        warnings.warn(message, category, stacklevel=1)
    return bool(caught)


@pytest.mark.parametrize("category, message", EXAMPLES)
def test_the_known_upstream_warnings_are_hidden(category, message):
    assert not _shown(category, message)


@pytest.mark.parametrize(
    "category, message",
    [
        (FutureWarning, "Importing from torch.nn is deprecated"),  # not timm
        (UserWarning, "Overwriting my_model in registry with my.package"),  # not solo-learn
        (UserWarning, "Importing from timm.models.layers is deprecated"),  # timm's text, wrong category
        (RuntimeWarning, "the SFRIK loss is not finite"),
    ],
)
def test_everything_else_still_shows(category, message):
    assert _shown(category, message)


def test_every_entry_has_an_example():
    import re

    for category, pattern in UPSTREAM_WARNINGS:
        if pattern.startswith(("The '", "GPU available", "The number", "You are using", "Starting from")):
            continue  # lightning's run-time messages: covered by the launcher runs
        assert any(issubclass(c, category) and re.match(pattern, m) for c, m in EXAMPLES), pattern


def test_console_lines_only_on_rank_zero(monkeypatch):
    stream = io.StringIO()
    setup_console(stream=stream)
    log = get_logger("sfrik_plugin.test")
    log.info("from rank zero")
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning sets in the processes it starts
    assert not is_rank_zero()
    log.info("from rank one")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")
    log.warning("from the second node")
    assert stream.getvalue() == "[sfrik] from rank zero\n"


def test_setup_console_revives_loggers_a_dict_config_disabled():
    log = get_logger("sfrik_plugin.revived")
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": True})
    assert log.disabled
    stream = io.StringIO()
    setup_console(stream=stream)
    log.info("back")
    assert stream.getvalue() == "[sfrik] back\n"


def test_input_errors_exit_with_status_2_and_one_line(capsys):

    with pytest.raises(SystemExit) as stop:
        with exit_on_input_error("sfrik-x"):
            raise InputError("data.train_path=/nope does not exist")
    assert stop.value.code == 2
    assert capsys.readouterr().err == "sfrik-x: error: data.train_path=/nope does not exist\n"
    # an error re-raised from a DataLoader worker carries the worker's traceback: its last line is kept
    worker_text = (
        "Caught ImageDecodeError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nsfrik_plugin.data.image_folder.ImageDecodeError: cannot decode /d/a.png: truncated\n'
    )
    with pytest.raises(SystemExit):
        with exit_on_input_error("sfrik-x"):
            raise InputError(worker_text)
    assert capsys.readouterr().err == "sfrik-x: error: cannot decode /d/a.png: truncated\n"
    with pytest.raises(KeyError):  # everything else propagates untouched
        with exit_on_input_error("sfrik-x"):
            raise KeyError("bug")
