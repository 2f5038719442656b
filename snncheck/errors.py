"""The one exception type that means "the user gave us something we cannot use".

The CLI turns it into a single line on stderr and exit code 2; everything else is a bug and keeps its traceback.
Messages quote what users wrote (layer names, keys, file names): `escape` makes every message one printable line,
so a key holding a newline or an ANSI escape cannot forge a line of output.
"""
from __future__ import annotations

import re
from typing import Callable, Union

# C0 and C1 controls (newline and ESC included), DEL, and lone surrogates (unprintable, unencodable)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def escape(text: str) -> str:
    """`text` with every control character and lone surrogate written as a Python escape (\\n, \\x1b, \\ud800)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), str(text))


class InputError(Exception):
    """Bad input or usage: a missing file, a corrupt checkpoint, an unsupported layer, mismatched shapes...
    str() of it is always one printable line."""

    def __str__(self) -> str:
        return escape(super().__str__())


def require(condition: bool, message: Union[str, Callable[[], str]]) -> None:
    """Raise InputError(message) unless `condition`. Pass a callable when building the message costs something
    or could itself fail on good input: it is called only when there is an error."""
    if not condition:
        raise InputError(message() if callable(message) else message)
