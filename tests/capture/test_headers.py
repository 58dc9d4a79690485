"""Headers read from raw bytes answer as the decoded fields do, asked once or again."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tapproxy.capture import Headers

_NAMES = st.sampled_from(["content-type", "Content-Type", "x-a", "K", "\u212a", "ÄÖ", "k",
                          "x-api-key", "X-Api-\u212aey", "x-api-\u212aey", "x-\u212a-a"])
# Names as recorded: also bytes that are not UTF-8 (kept through surrogateescape).
_RAW_NAMES = st.one_of(_NAMES.map(lambda s: s.encode()),
                       st.sampled_from([b"\xff", b"x-\xffk", b"Content-Type\xe2"]))
_RAW = st.lists(st.tuples(_RAW_NAMES, st.binary(max_size=8)), max_size=6)


@given(raw=_RAW, asked=st.lists(_NAMES, max_size=6))
def test_a_raw_lookup_is_the_decoded_lookup(raw, asked):
    fast = Headers.from_raw(tuple(raw))
    slow = Headers(tuple((k.decode("utf-8", "surrogateescape"),
                          v.decode("utf-8", "surrogateescape")) for k, v in raw))
    for name in asked + asked:  # twice: kept answers are the same answers
        assert fast.get(name) == slow.get(name)
        assert fast.get(name, "-") == slow.get(name, "-")


def test_the_kelvin_sign_lowercases_to_k_as_text_does():
    h = Headers.from_raw((("\u212a".encode(), b"1"),))
    assert h.get("k") == "1"


def test_a_name_with_the_kelvin_sign_inside_matches_its_ascii_form():
    h = Headers.from_raw(((b"x-other", b"0"), ("X-Api-\u212aey".encode(), b"1"),
                          (b"x-api-key", b"2")))
    assert h.get("x-api-key") == "1"  # the first of the name, as text compares it
    assert h.get("X-API-KEY") == "1"
    assert h.get("x-other") == "0"
