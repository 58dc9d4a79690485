"""The one noise model: which values and fields are volatile (ids, timestamps, nonces).

Pure functions of capture records, no I/O: baseline comparison, diff, replay matching
and contract drafting all mask with it.
"""

from typing import TYPE_CHECKING

from tapproxy.lazy import lazy_names

if TYPE_CHECKING:
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

# Each module is imported when first asked for: `stats` and the recorder's live figures
# name routes with `path_template` alone, not the model that learns from bodies.
_WHERE = {
    **dict.fromkeys(("MAX_LEAVES", "Answer", "NoiseLearner", "NoiseModel", "RouteKey",
                     "body_digest", "body_leaves", "header_pointer", "request_key",
                     "route_key"), ".model"),
    "path_template": ".paths",
    **dict.fromkeys(("PointerGlob", "escape", "parse_pointer_glob", "unescape", "walk"),
                    ".pointers"),
    **dict.fromkeys(("mask_text", "value_kind"), ".values"),
}
__getattr__ = lazy_names(__name__, _WHERE)


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
