"""Replay: serve a capture's recorded responses in place of its services.

`index` reads the capture into entries (bodies stay on disk), `matching` keys requests,
`matcher` chooses the answer and counts, `nearmiss` explains a miss, `server` and
`forward` answer on the wire, `runner` starts and stops it all. Only the listeners
touch aiohttp or mitmproxy.
"""

from tapproxy.replay.matcher import Matcher, Miss, ReplayStats
from tapproxy.replay.runner import BackgroundReplay, Replay, noise_mask

__all__ = ["BackgroundReplay", "Matcher", "Miss", "Replay", "ReplayStats", "noise_mask"]
