"""The bundled `calc` plugin: exact arithmetic, unit conversion, and quick refusals of anything else."""

from __future__ import annotations

import time

import jsonschema
import pytest

from mcp_host.tools.spec import ToolResult
from tests.test_plugin_files import load_plugin, plugin_tool

pytestmark = pytest.mark.anyio

calc = load_plugin("calc")


async def calculate(expression: str) -> ToolResult:
    return await plugin_tool(calc, "calculate").call({"expression": expression}, timeout_s=5)


@pytest.mark.parametrize(
    ("expression", "answer"),
    [
        ("2 * (3 + 4) ** 2", "98"),
        ("0.1 + 0.2", "0.3"),
        ("7 / 2", "3.5"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("-2 ** 2", "-4"),
        ("2 ** -1", "0.5"),
        ("2 ** 64", "18446744073709551616"),
        ("1_000_000 * 1e-3", "1000"),
        ("12.5 × 4 ÷ 5 − 1", "9"),
        ("sqrt(16) + cbrt(27)", "7"),
        ("sqrt(2) * pi", "4.44288293815837"),
        ("log(8, 2) + log10(1000) + ln(e)", "7"),
        ("sin(pi / 2) + cos(0)", "2"),
        ("degrees(atan2(1, 1))", "45"),
        ("floor(-2.5) + ceil(2.1) + round(2.567, 2)", "2.57"),
        ("factorial(20)", "2432902008176640000"),
        ("comb(52, 5)", "2598960"),
        ("gcd(84, 36) + lcm(4, 6) + min(3, 1, 2) + max(3, 1, 2) + abs(-2)", "30"),
        ("hypot(3, 4)", "5"),
        ("exp(1) == e", "True"),
        ("1 < 2 <= 2 != 3", "True"),
        ("10 > 20", "False"),
        ("1e308 * 10", "inf"),
    ],
)
async def test_arithmetic_and_functions(expression: str, answer: str) -> None:
    result = await calculate(expression)
    assert not result.is_error, result.text
    assert result.text == answer


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("x + 1", "unknown name 'x'"),
        ("__builtins__", "unknown name '__builtins__'"),
        ("__import__('os').system('true')", "attribute access"),
        ("__import__('os')", "only these functions can be called"),
        ("open('/etc/passwd')", "only these functions can be called"),
        ("(1).real", "attribute access"),
        ("math.sqrt(2)", "attribute access"),
        ("sqrt.__class__", "attribute access"),
        ("(lambda: 1)()", "only these functions can be called"),
        ("sqrt(x=4)", "only these functions can be called"),
        ("sqrt(*[4])", "*arguments are not allowed"),
        ("[1, 2]", "List is not allowed"),
        ("'a' * 3", "'a' is not a real number"),
        ("1j * 1j", "1j is not a real number"),
        ("True + 1", "True is not a real number"),
        ("2 ^ 10", "write 2 ** 10"),
        ("1 << 10000", "the operator << is not allowed"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("[x for x in range(10**9)]", "ListComp is not allowed"),
        ("9 ** 9 ** 9", "9 ** 387420489 would have about 349,875,564 digits"),
        ("10 ** 10 ** 100", "10 ** <a 101-digit number> would have far more than a trillion digits"),
        ("2 ** 3400", "the result would have about 1,024 digits"),
        ("(10 ** 999) * (10 ** 999)", "the result would have about 1,998 digits"),
        ("factorial(10 ** 6)", "factorial(1000000) would have about 5,565,709 digits"),
        ("comb(10 ** 6, 5 * 10 ** 5)", "would have about 301,027 digits"),
        ("10 ** 1000 / 3", "the result is too large"),
        ("sqrt(10 ** 999)", "the result is too large"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("(-8) ** (1 / 3)", "(-8) ** 0.333333333333333 has no real result"),
        ("sqrt(-1)", "math domain error"),
        ("sqrt(1, 2)", "sqrt"),
        ("1 +", "is not a valid expression"),
        ("", "the expression is empty"),
        ("1 + " * 200 + "1", "the expression is 801 characters long; the limit is 500"),
        ("-" * 400 + "1", "nested more than 60 levels deep"),
        ("-(" * 100 + "1" + ")" * 100, "nested more than"),
        ("~1", "the operator ~ is not allowed"),
        ("not 1", "the operator not is not allowed"),
    ],
)
async def test_anything_else_is_an_error_result_at_once(expression: str, message: str) -> None:
    started = time.perf_counter()
    result = await calculate(expression)
    assert time.perf_counter() - started < 1.0
    assert result.is_error
    assert message in result.text


@pytest.mark.parametrize(
    ("arguments", "answer"),
    [
        ({"value": 5, "from_unit": "km", "to_unit": "mi"}, "5 km = 3.106855961187 mi"),
        ({"value": 100, "from_unit": "°F", "to_unit": "C"}, "100 °F = 37.777777777778 C"),
        ({"value": 0, "from_unit": "celsius", "to_unit": "K"}, "0 celsius = 273.15 K"),
        ({"value": -40, "from_unit": "C", "to_unit": "F"}, "-40 C = -40 F"),
        ({"value": 2.5, "from_unit": "Hours", "to_unit": "min"}, "2.5 Hours = 150 min"),
        ({"value": 1, "from_unit": "lb", "to_unit": "g"}, "1 lb = 453.59237 g"),
        ({"value": 1, "from_unit": "GiB", "to_unit": "MB"}, "1 GiB = 1073.741824 MB"),
        ({"value": 100, "from_unit": "km/h", "to_unit": "m/s"}, "100 km/h = 27.777777777778 m/s"),
        ({"value": 1, "from_unit": "gallon", "to_unit": "l"}, "1 gallon = 3.785411784 l"),
        ({"value": 1, "from_unit": "square mile", "to_unit": "km2"}, "1 square mile = 2.589988110336 km2"),
    ],
)
async def test_unit_conversion(arguments: dict[str, object], answer: str) -> None:
    result = await plugin_tool(calc, "convert").call(arguments, timeout_s=5)
    assert not result.is_error, result.text
    assert result.text == answer


async def test_unit_conversion_errors() -> None:
    convert = plugin_tool(calc, "convert")
    unknown = await convert.call({"value": 1, "from_unit": "furlong", "to_unit": "m"}, timeout_s=5)
    assert unknown.is_error and "unknown unit 'furlong'" in unknown.text
    mismatch = await convert.call({"value": 1, "from_unit": "kg", "to_unit": "m"}, timeout_s=5)
    assert mismatch.is_error and "cannot convert mass (kg) to length (m)" in mismatch.text


def test_tools_are_read_only_idempotent_and_their_schemas_validate() -> None:
    for tool in calc.plugin.tools:
        assert tool.spec.annotations == {
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        }
        jsonschema.Draft202012Validator.check_schema(tool.spec.original_schema)
    jsonschema.validate({"expression": "1 + 1"}, plugin_tool(calc, "calculate").spec.original_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"expression": 2}, plugin_tool(calc, "calculate").spec.original_schema)
    schema = plugin_tool(calc, "convert").spec.original_schema
    jsonschema.validate({"value": 3.5, "from_unit": "km", "to_unit": "mi"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"value": "3", "from_unit": "km"}, schema)
