"""JSON as the API reads it: NaN, Infinity and numbers beyond a double are not numbers it takes.

Python's json module accepts NaN and Infinity (not JSON) and turns 1e999 into infinity, which
every range check then passes; request bodies and batch input lines are read with `loads_finite`.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range")
    return value


def loads_finite(data: str | bytes) -> Any:
    """json.loads that refuses NaN, Infinity and numbers too large for a double (ValueError)."""
    return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
