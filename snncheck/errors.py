"""The one exception type that means "the user gave us something we cannot use".

The CLI turns it into a single line on stderr and exit code 2; everything else is a bug and keeps its traceback.
"""
from __future__ import annotations

from typing import Callable, Union


class InputError(Exception):
    """Bad input or usage: a missing file, a corrupt checkpoint, an unsupported layer, mismatched shapes..."""


def require(condition: bool, message: Union[str, Callable[[], str]]) -> None:
    """Raise InputError(message) unless `condition`. Pass a callable when building the message costs something
    or could itself fail on good input: it is called only when there is an error."""
    if not condition:
        raise InputError(message() if callable(message) else message)
