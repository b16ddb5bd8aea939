"""The projector's shape, in one place: the widths of its layers and whether its last layer has a bias.

A projector is ``(Linear → BatchNorm1d → ReLU)`` per hidden width, then a last ``Linear`` to the
embedding dimension q. SFRIK's last ``Linear`` has no bias (the paper's projector); solo-learn's
VICReg and Barlow Twins keep one. :func:`projector_dims` reads the widths from a method's
``method_kwargs`` values and says which, and :meth:`ProjectorDims.parameters` counts the
parameters exactly as the layers are built: SFRIK's method builds its projector from it, the
memory model (:func:`sfrik_plugin.contenders.memory.predict_train_bytes`) and the launcher's
memory check count with it, and each training method's entry
(:class:`~sfrik_plugin.contenders.registry.TrainMethod`) says how its projector is built.

Error messages name the ``method_kwargs`` keys (``proj_hidden_dim``, ``proj_hidden_layers``,
``proj_output_dim``) the values come from.

Example:
    >>> dims = projector_dims(512, 2048, 8192, layers=2, last_bias=False)
    >>> dims.widths, dims.last_bias
    ((512, 2048, 2048, 8192), False)
    >>> dims.parameters() == (512 * 2048 + 3 * 2048) + (2048 * 2048 + 3 * 2048) + 2048 * 8192
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SFRIK_PROJECTOR_LAST_BIAS", "ProjectorDims", "projector_dims"]

#: SFRIK's last projector layer has no bias (the paper's projector); solo-learn's methods keep one.
SFRIK_PROJECTOR_LAST_BIAS = False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ProjectorDims:
    """``in_dim → hidden[0] → … → out_dim``; ``last_bias``: whether the last ``Linear`` has a bias."""

    in_dim: int
    hidden: tuple[int, ...]
    out_dim: int
    last_bias: bool

    @property
    def widths(self) -> tuple[int, ...]:
        """Every width, input and output included."""
        return (self.in_dim, *self.hidden, self.out_dim)

    def parameters(self) -> int:
        """Parameters of the built projector: each hidden ``Linear`` with its bias and its
        ``BatchNorm1d``'s weight and bias (3 per width), then the last ``Linear`` (bias if
        ``last_bias``).

        Example:
            >>> projector_dims(8, [], 4, last_bias=True).parameters()
            36
        """
        total, previous = 0, self.in_dim
        for width in self.hidden:
            total += previous * width + 3 * width
            previous = width
        return total + previous * self.out_dim + (self.out_dim if self.last_bias else 0)


def projector_dims(
    in_dim: int, hidden: int | Sequence[int], out_dim: int, *, layers: int | None = None, last_bias: bool
) -> ProjectorDims:
    """The projector's widths from a method's settings, checked.

    Args:
        in_dim: the backbone's output features.
        hidden: ``proj_hidden_dim``: one width for every hidden layer, or a list of widths.
        out_dim: ``proj_output_dim``, q.
        layers: ``proj_hidden_layers``: the hidden-layer count; needed with one width, optional
            with a list (then it must agree with the list's length).
        last_bias: whether the method builds its last ``Linear`` with a bias.

    Example:
        >>> projector_dims(16, [48, 40], 8, last_bias=True).hidden
        (48, 40)
        >>> projector_dims(16, [48, 40], 8, layers=3, last_bias=True)
        Traceback (most recent call last):
        ...
        ValueError: proj_hidden_dim lists 2 widths [48, 40] but proj_hidden_layers is 3; give one of them, or make them agree
    """
    if layers is not None and (not _is_int(layers) or layers < 0):
        raise ValueError(f"proj_hidden_layers must be an integer >= 0, got {layers!r}")
    if isinstance(hidden, (list, tuple)):
        if layers is not None and layers != len(hidden):
            raise ValueError(
                f"proj_hidden_dim lists {len(hidden)} widths {list(hidden)} but proj_hidden_layers is {layers}; "
                "give one of them, or make them agree"
            )
        widths = tuple(hidden)
    else:
        if layers is None:
            raise ValueError(f"proj_hidden_dim={hidden!r} is one width: proj_hidden_layers must say how many layers")
        widths = (hidden,) * layers
    if not all(_is_int(width) and width >= 1 for width in widths):
        raise ValueError(f"proj_hidden_dim must hold positive integers, got {hidden!r}")
    if not _is_int(out_dim) or out_dim < 1:
        raise ValueError(f"proj_output_dim must be a positive integer, got {out_dim!r}")
    if not _is_int(in_dim) or in_dim < 1:
        raise ValueError(f"the projector's input width must be a positive integer, got {in_dim!r}")
    return ProjectorDims(int(in_dim), tuple(int(w) for w in widths), int(out_dim), bool(last_bias))
