"""value_kind and mask_text: which values are volatile whatever the service does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapproxy.noise import mask_text, value_kind


@pytest.mark.parametrize(("value", "kind"), [
    ("3f2b8c1e-0c1a-4e5b-9a7d-1b2c3d4e5f60", "uuid"),
    ("3F2B8C1E-0C1A-4E5B-9A7D-1B2C3D4E5F60", "uuid"),
    ("2026-12-04T17:05:04.123Z", "timestamp"),
    ("2026-12-04 17:05:04+01:00", "timestamp"),
    ("2026-12-04T17:05", "timestamp"),
    ("Mon, 07 Dec 2026 20:57:04 GMT", "timestamp"),
    ("1764867904", "epoch"),
    ("1764867904123", "epoch"),
    (1764867904, "epoch"),
    (1764867904123, "epoch"),
    (1764867904.25, "epoch"),
    ("9f86d081884c7d659a2feaa0c55ad015", "hex-token"),
    ("9F86D081884C7D65", "hex-token"),
    ("Zx9fK2LmQ8pR4tV7wY1bN3", "token"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r", "token"),
    # Not volatile: data a service returns the same way every time.
    ("2026-12-04", None),  # a date alone: a due date, a birthday
    ("getOrderDetailsForCustomerV2", None),  # a name with a version
    ("order_2024_summary_report", None),
    ("deadbeefdeadbeefdead", None),  # hex letters only: a word, not a hash
    ("reservations_and_more_stuff", None),
    ("hello world, 1764867904", None),  # inside text: mask_text's business
    ("123456789", None),
    (42, None),
    (True, None),
    (None, None),
    (3.5, None),
    ({"a": 1}, None),
])
def test_kinds(value, kind) -> None:
    assert value_kind(value) == kind


@given(st.uuids())
def test_every_uuid_is_a_uuid(u: uuid.UUID) -> None:
    assert value_kind(str(u)) == value_kind(str(u).upper()) == "uuid"


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1),
                    timezones=st.just(UTC)))
def test_iso_and_http_dates_are_timestamps(t: datetime) -> None:
    assert value_kind(t.isoformat()) == "timestamp"
    assert value_kind(t.isoformat().replace("+00:00", "Z")) == "timestamp"
    assert value_kind(format_datetime(t, usegmt=True)) == "timestamp"


@given(st.integers(1_000_000_000, 9_999_999_999_999))
def test_epoch_seconds_and_milliseconds(n: int) -> None:
    assert value_kind(n) == value_kind(str(n)) == "epoch"


@given(st.binary(min_size=8, max_size=32).map(bytes.hex).filter(
    lambda h: any(c.isdigit() for c in h)))
def test_hex_digests_are_hex_tokens(h: str) -> None:
    assert value_kind(h) == "hex-token"


@given(st.from_regex(r"[a-z]{1,12}( [a-z]{1,12}){0,6}", fullmatch=True))
def test_words_are_never_volatile(text: str) -> None:
    assert value_kind(text) is None
    assert mask_text(text) == text


def test_mask_text_masks_inside_text() -> None:
    text = ("order 3f2b8c1e-0c1a-4e5b-9a7d-1b2c3d4e5f60 at 2026-12-04T17:05:04Z, "
            "ts 1764867904, sha 9f86d081884c7d659a2feaa0c55ad015; 42 items")
    assert mask_text(text) == ("order <noise:uuid> at <noise:timestamp>, ts <noise:epoch>, "
                               "sha <noise:hex-token>; 42 items")


@given(st.uuids(), st.text(alphabet="abc ", max_size=5))
def test_mask_text_finds_a_uuid_among_words(u: uuid.UUID, words: str) -> None:
    assert mask_text(f"{words}order {u} gone") == f"{words}order <noise:uuid> gone"


def test_mask_text_leaves_words_of_hex_letters() -> None:
    assert mask_text("deadbeefdeadbeefdead, 2026-12-04") == "deadbeefdeadbeefdead, 2026-12-04"


@given(st.text(alphabet="0123456789abcdefT:-Z .", max_size=80))
def test_mask_text_is_idempotent(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once
