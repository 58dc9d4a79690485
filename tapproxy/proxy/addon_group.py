"""Several addons as one entry of mitmproxy's addon chain, for a cheaper dispatch.

mitmproxy offers every event to every addon of its chain, whether it has the hook or
not: per addon and event a context manager, a coroutine, two generators and a getattr,
and each flow event is followed by an `update` event offered to all of them again. A
keep-alive request raises 8 such events, so each addon in the chain costs ~12 µs of
the event loop per request on the 2-core benchmark VM, hooks or not
(benchmarks/README.md, "Where the time goes"). An AddonGroup is one entry: it has a
hook only where a member has it, calls the members in their order, waits for one that
answers with an awaitable before calling the next (as mitmproxy does), and reports a
member's exception as mitmproxy would, without skipping the members after it.
"""

from __future__ import annotations

import inspect
import logging

# Every hook registers itself in all_hooks when the module declaring it is imported.
import mitmproxy.addonmanager  # the load hook
import mitmproxy.log  # add_log
import mitmproxy.proxy.layers  # flow, connection and TLS hooks
import mitmproxy.proxy.server_hooks  # noqa: F401  (connection hooks)
from mitmproxy.hooks import all_hooks

__all__ = ["AddonGroup"]

log = logging.getLogger("mitmproxy.addonmanager")  # where mitmproxy says "Addon error"


def _report(e: Exception) -> None:
    log.error(f"Addon error: {e}", exc_info=(type(e), e, e.__traceback__))


def _hook(funcs: list):
    """One hook calling `funcs` in order; async only from the first awaitable on."""

    async def rest(pending, i: int, args) -> None:
        try:
            await pending
        except Exception as e:
            _report(e)
        for f in funcs[i:]:
            try:
                res = f(*args)
                if res is not None and inspect.isawaitable(res):
                    await res
            except Exception as e:
                _report(e)

    def hook(*args):
        for i, f in enumerate(funcs):
            try:
                res = f(*args)
            except Exception as e:
                _report(e)
                continue
            if res is not None and inspect.isawaitable(res):
                return rest(res, i + 1, args)
        return None

    return hook


class AddonGroup:
    """mitmproxy addon: `members` (addons without nested ones) dispatched as one.

    A hook of a single member is that member's own bound method: no call in between.
    """

    def __init__(self, *members: object, name: str = "tapproxy") -> None:
        self.name = name  # mitmproxy names addons; each name once in a chain
        self.members = members
        for hook_name in all_hooks:
            funcs = [f for m in members if callable(f := getattr(m, hook_name, None))]
            if len(funcs) == 1:
                setattr(self, hook_name, funcs[0])
            elif funcs:
                setattr(self, hook_name, _hook(funcs))
