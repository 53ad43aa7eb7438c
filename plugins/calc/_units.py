"""Unit conversion for everyday quantities: length, area, volume, mass, time, speed, data and temperature.

    convert(5, "km", "mi")          # 3.10685596118667
    convert(100, "F", "C")          # 37.77777777777778

Each unit is a factor to its quantity's base unit (metre, square metre, litre, kilogram, second, metre
per second, byte); temperatures are offsets as well, so they are converted through kelvin.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnitError(ValueError):
    """A unit that is not known, or two units of different quantities; the message is for the model."""


@dataclass(frozen=True)
class Unit:
    quantity: str
    factor: float  # base units per one of this unit
    offset: float = 0.0  # for temperatures: kelvin = value * factor + offset


_TABLE: list[tuple[str, float, tuple[str, ...]]] = [
    ("length", 1.0, ("m", "meter", "meters", "metre", "metres")),
    ("length", 1e3, ("km", "kilometer", "kilometers", "kilometre", "kilometres")),
    ("length", 1e-2, ("cm", "centimeter", "centimeters", "centimetre", "centimetres")),
    ("length", 1e-3, ("mm", "millimeter", "millimeters", "millimetre", "millimetres")),
    ("length", 1e-6, ("um", "µm", "micrometer", "micrometers", "micron", "microns")),
    ("length", 1e-9, ("nm", "nanometer", "nanometers")),
    ("length", 1609.344, ("mi", "mile", "miles")),
    ("length", 0.9144, ("yd", "yard", "yards")),
    ("length", 0.3048, ("ft", "foot", "feet")),
    ("length", 0.0254, ("in", "inch", "inches")),
    ("length", 1852.0, ("nmi", "nautical mile", "nautical miles")),
    ("area", 1.0, ("m2", "m^2", "sq m", "square meter", "square meters", "square metre", "square metres")),
    ("area", 1e6, ("km2", "km^2", "sq km", "square kilometer", "square kilometers")),
    ("area", 1e4, ("ha", "hectare", "hectares")),
    ("area", 4046.8564224, ("acre", "acres")),
    ("area", 0.09290304, ("ft2", "ft^2", "sq ft", "square foot", "square feet")),
    ("area", 2589988.110336, ("mi2", "mi^2", "sq mi", "square mile", "square miles")),
    ("volume", 1.0, ("l", "liter", "liters", "litre", "litres")),
    ("volume", 1e-3, ("ml", "milliliter", "milliliters", "millilitre", "millilitres")),
    ("volume", 1e3, ("m3", "m^3", "cubic meter", "cubic meters", "cubic metre", "cubic metres")),
    ("volume", 3.785411784, ("gal", "gallon", "gallons", "us gallon", "us gallons")),
    ("volume", 4.54609, ("imperial gallon", "imperial gallons", "uk gallon", "uk gallons")),
    ("volume", 0.946352946, ("qt", "quart", "quarts")),
    ("volume", 0.473176473, ("pt", "pint", "pints")),
    ("volume", 0.2365882365, ("cup", "cups")),
    ("volume", 0.0295735295625, ("floz", "fl oz", "fluid ounce", "fluid ounces")),
    ("volume", 0.01478676478125, ("tbsp", "tablespoon", "tablespoons")),
    ("volume", 0.00492892159375, ("tsp", "teaspoon", "teaspoons")),
    ("mass", 1.0, ("kg", "kilogram", "kilograms")),
    ("mass", 1e-3, ("g", "gram", "grams")),
    ("mass", 1e-6, ("mg", "milligram", "milligrams")),
    ("mass", 1e3, ("t", "tonne", "tonnes", "metric ton", "metric tons")),
    ("mass", 0.45359237, ("lb", "lbs", "pound", "pounds")),
    ("mass", 0.028349523125, ("oz", "ounce", "ounces")),
    ("mass", 6.35029318, ("st", "stone", "stones")),
    ("time", 1.0, ("s", "sec", "second", "seconds")),
    ("time", 1e-3, ("ms", "millisecond", "milliseconds")),
    ("time", 1e-6, ("us", "µs", "microsecond", "microseconds")),
    ("time", 1e-9, ("ns", "nanosecond", "nanoseconds")),
    ("time", 60.0, ("min", "minute", "minutes")),
    ("time", 3600.0, ("h", "hr", "hour", "hours")),
    ("time", 86400.0, ("d", "day", "days")),
    ("time", 604800.0, ("wk", "week", "weeks")),
    ("time", 31557600.0, ("yr", "year", "years")),  # a Julian year: 365.25 days
    ("speed", 1.0, ("m/s", "mps", "meters per second", "metres per second")),
    ("speed", 1 / 3.6, ("km/h", "kmh", "kph", "kilometers per hour", "kilometres per hour")),
    ("speed", 0.44704, ("mph", "mi/h", "miles per hour")),
    ("speed", 1852 / 3600, ("kn", "kt", "knot", "knots")),
    ("speed", 0.3048, ("ft/s", "fps", "feet per second")),
    ("data", 1.0, ("b", "byte", "bytes")),
    ("data", 0.125, ("bit", "bits")),
    ("data", 1e3, ("kb", "kilobyte", "kilobytes")),
    ("data", 1e6, ("mb", "megabyte", "megabytes")),
    ("data", 1e9, ("gb", "gigabyte", "gigabytes")),
    ("data", 1e12, ("tb", "terabyte", "terabytes")),
    ("data", 1024.0, ("kib", "kibibyte", "kibibytes")),
    ("data", 1024.0**2, ("mib", "mebibyte", "mebibytes")),
    ("data", 1024.0**3, ("gib", "gibibyte", "gibibytes")),
    ("data", 1024.0**4, ("tib", "tebibyte", "tebibytes")),
]
_TEMPERATURES: list[tuple[Unit, tuple[str, ...]]] = [
    (Unit("temperature", 1.0, 273.15), ("c", "°c", "celsius", "degc", "degrees celsius")),
    (Unit("temperature", 5 / 9, 273.15 - 32 * 5 / 9), ("f", "°f", "fahrenheit", "degf", "degrees fahrenheit")),
    (Unit("temperature", 1.0, 0.0), ("k", "kelvin", "kelvins")),
]
UNITS: dict[str, Unit] = {
    **{name: Unit(quantity, factor) for quantity, factor, names in _TABLE for name in names},
    **{name: unit for unit, names in _TEMPERATURES for name in names},
}


def _unit(name: str) -> Unit:
    key = " ".join(name.strip().lower().split())
    unit = UNITS.get(key)
    if unit is None:
        quantities = sorted({u.quantity for u in UNITS.values()})
        raise UnitError(f"unknown unit {name!r}; known quantities: {', '.join(quantities)} (e.g. km, lb, °F, h)")
    return unit


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """`value` in `from_unit`, expressed in `to_unit`; raises `UnitError` for unknown or mismatched units."""
    source, target = _unit(from_unit), _unit(to_unit)
    if source.quantity != target.quantity:
        raise UnitError(f"cannot convert {source.quantity} ({from_unit}) to {target.quantity} ({to_unit})")
    base = value * source.factor + source.offset
    return (base - target.offset) / target.factor
