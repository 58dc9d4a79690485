"""The built-in demo: a shop of four services under a real `pytest --tapproxy` session.

    tests ──▶ shop (aiohttp) ──▶ catalog    Node, fronted: nothing in it changed
                            ├──▶ inventory  gRPC (grpcio)
                            └──▶ payments   OpenTelemetry SDK, spans sent to tapproxy

`services/` holds the four programs, `suite/` the tests (three pass, one fails by a
payment two services down, one by a catalog that drifted from its contract);
`session.py` runs the suite, `story.py` tells what it recorded.
"""

from tapproxy.demo.requirements import missing_requirements
from tapproxy.demo.story import tell_story

__all__ = ["missing_requirements", "tell_story"]
