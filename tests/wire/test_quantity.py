"""Kubernetes quantities: exact values, the k8s grammar, and bounded magnitudes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from extender.wire import QuantityError, milli_units, parse_quantity, whole_units

VALID: list[tuple[str | int | float, str]] = [
    ("0", "0"),
    ("1", "1"),
    ("8", "8"),
    ("+2", "2"),
    ("-1", "-1"),
    ("1.5", "1.5"),
    (".5", "0.5"),
    ("5.", "5"),
    (" 2 ", "2"),  # apimachinery trims quantities it unmarshals from JSON
    ("500m", "0.5"),
    ("1m", "0.001"),
    ("250u", "0.00025"),
    ("5n", "0.000000005"),
    ("1Ki", "1024"),
    ("16Mi", "16777216"),
    ("16Gi", "17179869184"),
    ("1.5Gi", "1610612736"),
    ("1Ti", "1099511627776"),
    ("1Ei", "1152921504606846976"),
    ("1k", "1000"),
    ("2M", "2000000"),
    ("3G", "3000000000"),
    ("1T", "1e12"),
    ("1E", "1e18"),
    ("1e3", "1000"),
    ("1E3", "1000"),
    ("2e-3", "0.002"),
    ("1.5e+2", "150"),
    ("1e30", "1e30"),
    (4, "4"),
    (0.5, "0.5"),
]

INVALID: list[str | int | float | bool] = [
    "",
    " ",
    "abc",
    "Gi",
    "m",
    "1 Gi",
    "1KiB",
    "1K",  # only lower-case k is decimal kilo
    "1ki",
    "1gi",
    "--1",
    "1e3m",
    "1e2.5",
    "1.2.3",
    "0x10",
    "1_000",
    "NaN",
    "Infinity",
    float("nan"),
    float("inf"),
    True,
]

HUGE: list[str | int | float] = [
    "1e31",
    "2e30",
    "1000000000000Ei",
    "9" * 40,
    "1e999998",
    "9e999999",
    "99e999999",  # decimal.Overflow, not InvalidOperation
    "1e1000000",
    "1e9999999",
    "1e" + "9" * 5000,  # more digits than int() accepts
    10**40,
    1e300,
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[repr(v) for v, _ in VALID])
def test_a_valid_quantity_parses_to_its_exact_value(text: str | int | float, expected: str) -> None:
    assert parse_quantity(text) == Decimal(expected)


@pytest.mark.parametrize("text", INVALID, ids=[repr(v) for v in INVALID])
def test_an_invalid_string_raises_quantity_error_naming_the_value(
    text: str | int | float | bool,
) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("text", HUGE, ids=[repr(v)[:24] for v in HUGE])
def test_a_huge_value_raises_quantity_error_rather_than_computing_it(
    text: str | int | float,
) -> None:
    with pytest.raises(QuantityError, match="out of range"):
        parse_quantity(text)


def test_quantity_error_is_a_value_error() -> None:
    assert issubclass(QuantityError, ValueError)


WHOLE: list[tuple[str | int, int]] = [
    ("0", 0),
    ("1", 1),
    ("8", 8),
    (8, 8),
    ("1k", 1000),
    ("1e1", 10),
    ("1000m", 1),
    ("2.0", 2),
]


@pytest.mark.parametrize(("text", "expected"), WHOLE, ids=[repr(v) for v, _ in WHOLE])
def test_whole_units_gives_a_countable_quantity_as_int(text: str | int, expected: int) -> None:
    result = whole_units(text)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("text", ["1.5", "500m", "-1", "-1k", "0.001"])
def test_whole_units_rejects_fractions_and_negatives(text: str) -> None:
    with pytest.raises(QuantityError, match="whole, non-negative"):
        whole_units(text)


@pytest.mark.parametrize("text", ["x", "1e31", ""])
def test_whole_units_passes_on_parse_errors(text: str) -> None:
    with pytest.raises(QuantityError):
        whole_units(text)


MILLI: list[tuple[str | int, int]] = [
    ("1", 1000),
    ("500m", 500),
    ("1m", 1),
    ("0.1m", 1),  # rounded up, like MilliValue()
    ("1.0001", 1001),
    ("1Ki", 1024000),
    ("0", 0),
    ("-1m", -1),
    (2, 2000),
]


@pytest.mark.parametrize(("text", "expected"), MILLI, ids=[repr(v) for v, _ in MILLI])
def test_milli_units_gives_thousandths_rounded_up(text: str | int, expected: int) -> None:
    result = milli_units(text)
    assert result == expected
    assert type(result) is int
