"""The PAICORE chip's numeric limits as PAIBox 1.3 enforces them, written once.

PAIBox raises on weights outside int8 when a synapse is made, but accepts a float or out-of-range threshold in
simulation and checks ranges only when mapping (`Mapper.export`); `InputProj` silently casts its input to uint8
(300 becomes 44, -1 becomes 255). So every limit is checked here, before anything is built, and a value outside
says which limit it breaks instead of running something else.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

WEIGHT = (-128, 127)                      # int8 synaptic weights (Conv2d kernels, FullConn, one-to-one factors)
THRESHOLD = (0, 2 ** 29 - 1)              # positive threshold
VALUE = (-(2 ** 29), 2 ** 29 - 1)         # 30-bit signed: bias + leak, reset value, the membrane itself
INPUT = (0, 255)                          # what InputProj carries (uint8)
NEG_THRESHOLD_DEFAULT = -(2 ** 29 - 1)    # PAIBox's default negative threshold: a floor on v that is never reached

THRESHOLD_MAX = THRESHOLD[1]

# which limit each numeric field of a graph primitive has on the chip (snncheck.graph.primitives)
FIELD_LIMITS = {"weight": WEIGHT, "factor": WEIGHT, "threshold": THRESHOLD, "bias": VALUE, "leak": VALUE,
                "v_reset": VALUE, "v_init": VALUE}


def problem(what: str, value, limits: tuple) -> Optional[str]:
    """Why `value` (a scalar or an array) cannot be put on the chip as `what`, or None if it can: it must be finite,
    integer-valued and inside `limits` (inclusive)."""
    reason = integer_problem(what, value)
    if reason or np.size(value) == 0:
        return reason
    a = np.asarray(value)
    lo, hi = limits
    if a.min() < lo or a.max() > hi:
        return f"{what} ranges over [{int(a.min())}, {int(a.max())}], outside PAIBox's [{lo}, {hi}]"
    return None


def integer_problem(what: str, value) -> Optional[str]:
    """Why `value` is not a finite integer (array), or None."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        return f"{what} has dtype {a.dtype}, not a number"
    if a.dtype.kind == "f" and a.size:
        if not np.all(np.isfinite(a)):
            return f"{what} contains NaN or infinite values"
        if not np.all(a == np.round(a)):
            bad = a[a != np.round(a)].ravel()[0]
            return f"{what} is not integer-valued (e.g. {bad:g}): PAIBox runs integer networks only (convert first)"
    return None


def input_problem(inputs) -> Optional[str]:
    """Why these inputs cannot be fed to an InputProj as they are (None if they can)."""
    reason = problem("the input", inputs, INPUT)
    return None if reason is None else f"{reason} (InputProj casts its input to uint8)"
