"""Diff fixtures: a WebSocket service recorded through the real proxy (`ws_chat`).

`record_chat(name)` records two identical conversations with the live `chat` service
through a reverse listener of the real proxy (so that the noise a repeated
conversation shows is learned) and returns the capture; the service keeps running
for `replay --against`, behaving as the test's `behaviour` says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tapproxy.supervisor.options import Address, ReverseSpec
from tests.conftest import free_port
from tests.diff.ws_chat import SAID, Behaviour, chat_app, converse


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@pytest.fixture
def chat(services, behaviour):
    """The live service (its behaviour the test's `behaviour`)."""
    return services.start("chat", chat_app(behaviour))


@pytest.fixture
def record_chat(start_proxy, chat, tmp_path) -> Callable[..., Path]:
    """record_chat(name, between=None, said=SAID) → a capture of two identical
    conversations with `chat` (`between()` called between them)."""
    def record(name: str, between: Callable[[], None] | None = None,
               said: tuple[str, ...] = SAID) -> Path:
        front = free_port()
        proxy = start_proxy(output=tmp_path / f"{name}.tap", reverse=(
            ReverseSpec("chat", chat.url, Address("127.0.0.1", front)),))
        for i in range(2):
            if i and between is not None:
                between()
            asyncio.run(converse(f"http://127.0.0.1:{front}/chat", said))
        proxy.stop()
        return proxy.capture
    return record
