"""Customer validation, normalization, codes and search keys."""

from __future__ import annotations

import pytest

from lanehub.domain.codes import CodeFormat
from lanehub.domain.model import CUSTOMER, derive_customer, normalize_text

CODES = CodeFormat()


@pytest.mark.parametrize("fields, field", [
    ({"first_name": ""}, "first_name"),
    ({"last_name": "   "}, "last_name"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "a@b"}, "email"),
    ({"phone": "12"}, "phone"),
    ({"phone": "call me"}, "phone"),
    ({"mobile": "+34 6" + "1" * 20}, "mobile"),
    ({"country": "Spain"}, "country"),
    ({"code": "C-1"}, "code"),
    ({"payment_status": "rich"}, "payment_status"),
    ({"status": "gone"}, "status"),
    ({"active": "yes"}, "active"),
    ({"first_name": "x" * 201}, "first_name"),
    ({"shoe_size": "42"}, "shoe_size"),
    ({"notes": 5}, "notes"),
])
def test_invalid_fields_are_named(fields, field):
    errors = CUSTOMER.check_fields(fields, CODES)
    assert field in errors, errors


def test_valid_customer_has_no_errors():
    fields = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "phone": "+44 (20) 7946-0018",
              "country": "GB", "code": "CUST-00042", "payment_status": "pending", "status": "open", "active": True}
    assert CUSTOMER.check_fields(fields, CODES) == {}


def test_codes_permanent_and_provisional():
    assert CODES.format(42) == "CUST-00042"
    assert CODES.number("CUST-00042") == 42
    assert CODES.number("CUST-123456") == 123456  # width is a minimum
    assert CODES.number("CUST-042") is None
    assert CODES.provisional("S001", 1) == "CUST-S001-P0001"
    assert CODES.provisional_store("CUST-S001-P0001") == "S001"
    assert CODES.provisional_store("CUST-00042") is None
    assert CodeFormat("C", 3).format(7) == "C007"


@pytest.mark.parametrize("prefix, width", [("cust-", 5), ("", 5), ("CUST-", 0)])
def test_bad_code_formats_are_refused(prefix, width):
    with pytest.raises(ValueError):
        CodeFormat(prefix, width)


def test_normalization_for_matching():
    assert normalize_text("  José   ÁLVAREZ ") == "jose alvarez"
    keys = derive_customer({"first_name": "Zoë", "last_name": "Núñez", "email": "Zoe@Example.COM",
                            "phone": "+34 600-11 22", "mobile": "", "postcode": "sw1a 1aa"})
    assert keys == {"name_key": "zoe nunez", "email_key": "zoe@example.com", "phone_key": "346001122",
                    "mobile_key": "", "postcode_key": "SW1A1AA"}


def test_normalize_trims_and_upper_cases_codes_of_rates_and_countries():
    out = CUSTOMER.normalize({"first_name": "  Ada  ", "country": "gb", "rate": "vip"})
    assert out == {"first_name": "Ada", "country": "GB", "rate": "VIP"}
