"""A safe arithmetic evaluator: Python's expression syntax, walked node by node, numbers only.

    evaluate("2 * (3 + 4) ** 2")      # 98
    evaluate("sqrt(2) * pi")          # 4.442882938158366
    evaluate("__import__('os')")      # CalculationError: only these functions can be called: ...

Nothing is `eval`ed: the parsed tree is walked, and any node that is not a number, an operator, an
allowed constant or a call of an allowed function by its bare name is refused. Every integer is kept
under MAX_INT_BITS (about 1,000 digits) and powers are judged before they are computed, so `9**9**9`
is refused at once instead of filling memory; the expression's length and nesting are bounded too.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 3400  # about 1,000 decimal digits
MAX_DEPTH = 60
ROUND_DIGITS = 1100  # past this, round() keeps every digit of a bounded result, or none

Number = int | float


class CalculationError(ValueError):
    """An expression that cannot be evaluated; the message says why, for the model."""


def _guard_size(bits: float, what: str) -> None:
    if bits > MAX_INT_BITS:
        digits = f"about {bits * math.log10(2):,.0f}" if bits < 1e12 else "far more than a trillion"
        raise CalculationError(f"{what} would have {digits} digits; the limit is 1,000")


def _factorial(n: int) -> int:
    if isinstance(n, int) and n > 1:
        _guard_size(math.lgamma(n + 1) / math.log(2), f"factorial({_short(n)})")
    return math.factorial(n)


def _perm(n: int, k: int | None = None) -> int:
    if isinstance(n, int) and isinstance(k, int) and 0 <= k <= n:
        _guard_size((math.lgamma(n + 1) - math.lgamma(n - k + 1)) / math.log(2), f"perm({_short(n)}, {_short(k)})")
    elif isinstance(n, int) and k is None and n > 1:
        _guard_size(math.lgamma(n + 1) / math.log(2), f"perm({_short(n)})")
    return math.perm(n, k)


def _comb(n: int, k: int) -> int:
    if isinstance(n, int) and isinstance(k, int) and 0 <= k <= n:
        bits = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)
        _guard_size(bits, f"comb({_short(n)}, {_short(k)})")
    return math.comb(n, k)


def _round(value: Any, ndigits: Any = None) -> Any:
    """`round`, without computing 10**ndigits for an absurd `ndigits` (that holds the GIL for minutes)."""
    if isinstance(ndigits, int) and not isinstance(ndigits, bool) and abs(ndigits) > ROUND_DIGITS:
        return value if ndigits > 0 else type(value)(0)
    return round(value, ndigits)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "cbrt": math.cbrt,
    "isqrt": math.isqrt,
    "exp": math.exp,
    "log": math.log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "hypot": math.hypot,
    "floor": math.floor,
    "ceil": math.ceil,
    "trunc": math.trunc,
    "fabs": math.fabs,
    "factorial": _factorial,
    "comb": _comb,
    "perm": _perm,
    "gcd": math.gcd,
    "lcm": math.lcm,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_REFUSED_OPERATORS: dict[type[ast.AST], str] = {
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.MatMult: "@",
    ast.Invert: "~",
    ast.Not: "not",
}
_SYMBOLS = str.maketrans({"×": "*", "÷": "/", "−": "-", "·": "*"})


def evaluate(expression: str) -> Number | bool:
    """The value of `expression`; raises `CalculationError` saying what is wrong or not allowed."""
    text = expression.translate(_SYMBOLS).strip()
    if not text:
        raise CalculationError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"the expression is {len(text)} characters long; the limit is {MAX_EXPRESSION_CHARS}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"{text!r} is not a valid expression ({exc.msg})") from exc
    except (RecursionError, MemoryError, ValueError) as exc:
        raise CalculationError(f"{text!r} cannot be parsed ({type(exc).__name__})") from exc
    try:
        value: Number | bool = _eval(tree.body, 0)
    except ZeroDivisionError as exc:
        raise CalculationError("division by zero") from exc
    except OverflowError as exc:
        raise CalculationError(f"the result is too large ({exc})") from exc
    except (ValueError, TypeError) as exc:
        if isinstance(exc, CalculationError):
            raise
        if str(exc) == "math domain error":
            raise CalculationError("math domain error (e.g. sqrt or log of a negative number, asin(2))") from exc
        raise CalculationError(str(exc)) from exc
    return value


def _eval(node: ast.expr, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CalculationError(f"the expression is nested more than {MAX_DEPTH} levels deep")
    depth += 1
    match node:
        case ast.Constant(value=bool() | complex() | str() | bytes() | None):
            raise CalculationError(f"{node.value!r} is not a real number; only numbers can be calculated")
        case ast.Constant(value=int() | float() as value):
            return _checked(value)
        case ast.Name(id=name) if name in CONSTANTS:
            return CONSTANTS[name]
        case ast.Name(id=name):
            known = ", ".join(sorted(CONSTANTS))
            raise CalculationError(f"unknown name {name!r}: the only names are the constants {known} and functions")
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand, depth)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return +_eval(operand, depth)
        case ast.BinOp(op=ast.Pow(), left=left, right=right):
            return _power(_eval(left, depth), _eval(right, depth))
        case ast.BinOp(op=ast.BitXor()):
            raise CalculationError("^ is not a power here: write 2 ** 10 for two to the tenth")
        case ast.BinOp(op=op, left=left, right=right) if type(op) in _BINARY:
            return _checked(_BINARY[type(op)](_eval(left, depth), _eval(right, depth)))
        case ast.BinOp(op=op) | ast.UnaryOp(op=op):
            symbol = _REFUSED_OPERATORS.get(type(op), type(op).__name__)
            raise CalculationError(f"the operator {symbol} is not allowed: use + - * / // % ** and comparisons")
        case ast.Compare(left=left, ops=ops, comparators=comparators) if all(type(op) in _COMPARE for op in ops):
            values = [_eval(left, depth), *(_eval(c, depth) for c in comparators)]
            return all(_COMPARE[type(op)](a, b) for op, a, b in zip(ops, values, values[1:], strict=False))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            if any(isinstance(arg, ast.Starred) for arg in args):
                raise CalculationError("*arguments are not allowed")
            return _checked(FUNCTIONS[name](*(_eval(arg, depth) for arg in args)))
        case ast.Call(func=ast.Attribute()) | ast.Attribute():
            raise CalculationError("attribute access (x.y) is not allowed; write functions by their bare name")
        case ast.Call():
            raise CalculationError(f"only these functions can be called, by name: {', '.join(sorted(FUNCTIONS))}")
        case _:
            raise CalculationError(f"{type(node).__name__} is not allowed: only numbers, operators and functions")


def _power(base: Any, exponent: Any) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        _guard_size((abs(base).bit_length() - 1) * exponent, f"{_short(base)} ** {_short(exponent)}")
    result = base**exponent
    if isinstance(result, complex):
        raise CalculationError(f"{_short(base)} ** {_short(exponent)} has no real result")
    return _checked(result)


def _short(number: Any) -> str:
    text = format_number(number) if isinstance(number, int | float) else repr(number)
    text = f"({text})" if text.startswith("-") else text
    return text if len(text) <= 30 else f"<a {len(text)}-digit number>"


def _checked(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        _guard_size(value.bit_length(), "the result")
    elif not isinstance(value, float | bool):
        raise CalculationError(f"the result {value!r} is not a number")
    return value


def format_number(value: Number | bool) -> str:
    """An answer a model can quote: exact integers, floats to 15 significant digits (0.1 + 0.2 is 0.3)."""
    if isinstance(value, bool | int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".15g")
