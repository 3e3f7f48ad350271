"""Kubernetes resource quantities ("500m", "16Gi", "1e3") as exact numbers."""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
# The grammar of k8s.io/apimachinery/pkg/api/resource: a signed decimal, then a binary
# suffix, a decimal SI suffix, or a decimal exponent.
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)
# Bounds a quantity may have on the wire; larger ones are rejected rather than computed.
_MAX_MAGNITUDE = Decimal("1e30")


class QuantityError(ValueError):
    """Not a valid Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """The exact value of a Kubernetes quantity; raises QuantityError when it is not one."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        text = repr(value) if isinstance(value, float) else str(value)
    else:
        text = value.strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(f"{value!r} is not a quantity (e.g. '1', '500m', '16Gi')")
    suffix = match["suffix"] or ""
    try:
        number = Decimal(match["num"])
        if suffix in _SUFFIXES:  # "E" and "Ei" are exa and exbi, not exponents
            result = number * _SUFFIXES[suffix]
        else:
            result = number.scaleb(int(suffix[1:]))
    except (ArithmeticError, ValueError) as exc:  # decimal.Overflow, int() digit limit
        raise QuantityError(f"{value!r} is out of range") from exc
    if not result.is_finite() or abs(result) > _MAX_MAGNITUDE:
        raise QuantityError(f"{value!r} is out of range")
    return result


def whole_units(value: str | int | float) -> int:
    """A countable quantity (GPUs, devices) as an int; rejects fractions and negatives."""
    quantity = parse_quantity(value)
    if quantity < 0 or quantity != quantity.to_integral_value():
        raise QuantityError(f"{value!r} is not a whole, non-negative count")
    return int(quantity)


def milli_units(value: str | int | float) -> int:
    """A quantity in thousandths, rounded up the way Kubernetes' MilliValue() does."""
    quantity = parse_quantity(value) * 1000
    return int(quantity.to_integral_value(rounding="ROUND_CEILING"))


def millicores(value: str | int | float | None) -> int:
    """A CPU quantity in millicores; 0 when absent, negative or unreadable (the API server
    refuses such values, so counting nothing beats failing)."""
    try:
        return max(0, milli_units(value)) if value is not None else 0
    except QuantityError:
        return 0
