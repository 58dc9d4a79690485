"""Addons dispatched as one chain entry behave as they did as separate entries."""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import options
from mitmproxy.master import Master
from mitmproxy.proxy.layers.http import HttpRequestHook, HttpResponseHook
from mitmproxy.test import tflow

from tapproxy.proxy.addon_group import AddonGroup


class _Member:
    def __init__(self, name: str, seen: list) -> None:
        self.name, self.seen = name, seen

    def request(self, flow) -> None:
        self.seen.append(self.name)


class _Slow(_Member):
    async def request(self, flow) -> None:
        await asyncio.sleep(0.01)
        self.seen.append(self.name)


class _Failing(_Member):
    def request(self, flow) -> None:
        self.seen.append(self.name)
        raise RuntimeError("boom")


def test_members_run_in_order_one_after_the_other_and_a_failure_stops_none(caplog):
    seen: list[str] = []
    group = AddonGroup(_Member("a", seen), _Failing("b", seen), _Slow("c", seen),
                       _Failing("d", seen), _Member("e", seen))

    async def run() -> None:
        master = Master(options.Options(), event_loop=asyncio.get_running_loop())
        master.addons.add(group)
        with caplog.at_level(logging.ERROR):
            await master.addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
            await master.addons.handle_lifecycle(HttpResponseHook(tflow.tflow(resp=True)))

    asyncio.run(run())
    # c awaited before d; neither b's error (before) nor d's (after c) stops the rest.
    assert seen == ["a", "b", "c", "d", "e"]
    assert [r.getMessage() for r in caplog.records] == ["Addon error: boom"] * 2


def test_a_hook_no_member_has_is_not_offered():
    seen: list[str] = []
    one = _Member("a", seen)
    group = AddonGroup(one, object())
    assert not hasattr(group, "response")
    assert group.request == one.request  # a single member's hook is its own method
