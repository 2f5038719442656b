"""The one exception type that means "the user gave us something we cannot use".

The CLI turns it into a single line on stderr and exit code 2; everything else is a bug and keeps its traceback.
"""


class InputError(Exception):
    """Bad input or usage: a missing file, a corrupt checkpoint, an unsupported layer, mismatched shapes..."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)
