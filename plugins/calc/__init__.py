"""Calc: exact arithmetic and unit conversion, because small models are poor at both.

Tools (read-only, idempotent):
    `calc.calculate(expression)`  Python's expression syntax on numbers only: + - * / // % **, parentheses,
                                  comparisons, the constants pi, e, tau, inf and functions such as sqrt,
                                  log, sin, floor, factorial; no other names, no attributes, no other calls,
                                  results bounded to about 1,000 digits (see `_evaluate.py`).
    `calc.convert(value, from_unit, to_unit)`  length, area, volume, mass, time, speed, data, temperature.

Config: none.
"""

from __future__ import annotations

from mcp_host.plugins import Plugin

from ._evaluate import CalculationError as CalculationError
from ._evaluate import evaluate, format_number
from ._units import UnitError as UnitError
from ._units import convert as convert_units

# `Plugin.tool` returns `Any`, so mypy calls each tool untyped: hence the ignores on the decorators.
plugin = Plugin("calc", description="Exact arithmetic and unit conversion.")


@plugin.tool(read_only=True, idempotent=True)
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "(17.5 * 3 - 2) / 4", "sqrt(2) * pi", "2 ** 64".

    Args:
        expression: Python syntax: numbers, + - * / // % ** (power; ^ is not power), parentheses, comparisons,
            pi, e, tau, and functions such as sqrt, cbrt, exp, log (natural; log(x, base)), log10, log2, sin,
            cos, tan (radians), asin, atan2, degrees, radians, floor, ceil, round, abs, min, max, hypot,
            factorial, comb, perm, gcd, lcm.
    """
    return format_number(evaluate(expression))


@plugin.tool(read_only=True, idempotent=True)
def convert(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units of length, area, volume, mass, time, speed, data or temperature.

    Args:
        value: The amount in from_unit.
        from_unit: The unit it is in, e.g. "km", "mi", "lb", "kg", "°F", "C", "h", "mph", "gal", "MiB".
        to_unit: The unit to express it in (of the same quantity).
    """
    result = convert_units(value, from_unit, to_unit)
    return f"{format_number(value)} {from_unit} = {format_number(round(result, 12))} {to_unit}"
