"""The one noise model: which values and fields are volatile (ids, timestamps, nonces).

Pure functions of capture records, no I/O: baseline comparison, diff, replay matching
and contract drafting all mask with it.
"""

from tapproxy.noise.model import (
    MAX_LEAVES,
    Answer,
    NoiseLearner,
    NoiseModel,
    RouteKey,
    body_digest,
    body_leaves,
    header_pointer,
    request_key,
    route_key,
)
from tapproxy.noise.paths import path_template
from tapproxy.noise.pointers import PointerGlob, escape, parse_pointer_glob, unescape, walk
from tapproxy.noise.values import mask_text, value_kind

__all__ = [
    "MAX_LEAVES",
    "Answer",
    "NoiseLearner",
    "NoiseModel",
    "PointerGlob",
    "RouteKey",
    "body_digest",
    "body_leaves",
    "escape",
    "header_pointer",
    "mask_text",
    "parse_pointer_glob",
    "path_template",
    "request_key",
    "route_key",
    "unescape",
    "value_kind",
    "walk",
]
