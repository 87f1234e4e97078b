"""`ShapeError` and the `check` helper every shape rule uses.

One message format everywhere::

    <Kind> at '<path>': <expected>; got <got>

Rules raise `ShapeError` without a path (they never know where they sit in a
model); the propagation pass fills in the path and the layer kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ShapeError", "check"]


class ShapeError(ValueError):
    """A shape problem, found before any computation or allocation.

    Attributes:
        path: the layer path in the model (``"2"``, ``"encoder.fc"``), or ``""``
            when the error was raised outside a model.
        kind: the layer kind (``"Linear"``).
        expected: what the layer requires, in words.
        got: what it was given, in words (names and values).
        hparams: the hyperparameters that matter for this error.
    """

    __module__ = "lazyshape"  # as users name it: ``lazyshape.ShapeError``

    def __init__(
        self,
        expected: str,
        got: str,
        *,
        kind: str = "",
        path: str = "",
        hparams: Mapping[str, Any] | None = None,
    ) -> None:
        self.expected = expected
        self.got = got
        self.kind = kind
        self.path = path
        self.hparams: dict[str, Any] = dict(hparams or {})
        super().__init__(self._message())

    def _message(self) -> str:
        where = ""
        if self.kind and self.path:
            where = f"{self.kind} at '{self.path}': "
        elif self.kind:
            where = f"{self.kind}: "
        elif self.path:
            where = f"at '{self.path}': "
        msg = f"{where}{self.expected}; got {self.got}"
        if self.hparams:
            hp = ", ".join(f"`{k}` (={v!r})" for k, v in self.hparams.items())
            msg += f" [{hp}]"
        return msg

    def located(self, kind: str, path: str) -> ShapeError:
        """Return a copy of this error placed at a layer (kind and path filled in
        where the rule left them empty)."""
        err = ShapeError(
            self.expected,
            self.got,
            kind=self.kind or kind,
            path=self.path or path,
            hparams=self.hparams,
        )
        err.__cause__ = self.__cause__
        return err

    def __reduce__(self) -> tuple[Any, ...]:  # keep exceptions copyable
        return (_rebuild, (self.expected, self.got, self.kind, self.path, self.hparams))


def _rebuild(
    expected: str, got: str, kind: str, path: str, hparams: Mapping[str, Any]
) -> ShapeError:
    return ShapeError(expected, got, kind=kind, path=path, hparams=hparams)


def check(
    cond: bool,
    message: Callable[[], tuple[str, str]],
    **hparams: Any,
) -> None:
    """Raise `ShapeError` unless ``cond``; ``message()`` returns ``(expected, got)``
    and is only called on failure, so messages cost nothing on the fast path."""
    if not cond:
        expected, got = message()
        raise ShapeError(expected, got, hparams=hparams or None)
