"""A session id in a path parameter never leaves in span attributes, even from a capture
recorded with --no-redact (as secret query values never do)."""

from __future__ import annotations

from tapproxy.spans.semconv import client_attributes, server_attributes
from tests.spans.build import exchange


def test_session_id_path_parameters_are_redacted_in_url_full_and_url_path() -> None:
    x = exchange("x", "app", "shop", 0, 5, path="/cart;jsessionid=0A1B2C;v=2/items?sig=s&a=1")
    assert client_attributes(x)[1]["url.full"] == (
        "http://shop/cart;jsessionid=REDACTED;v=2/items?sig=REDACTED&a=1")
    attrs = server_attributes(x)[1]
    assert attrs["url.path"] == "/cart;jsessionid=REDACTED;v=2/items"
    assert attrs["url.query"] == "sig=REDACTED&a=1"
