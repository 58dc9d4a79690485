"""A small real `Contract` for unit tests of the parts that consume contracts (the story,
the incremental check): one route of one callee whose JSON response field must have a
type, and optionally a number of calls per test. Not a contract format users write."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tapproxy.capture.model import Exchange
from tapproxy.contract.model import ContractItem, Hit, Location, Mismatch, Verdict

_TYPES = {"integer": int, "string": str}


@dataclass
class FieldContract:
    callee: str
    path_only: str
    field: str  # a top-level field of the JSON response body
    type_name: str  # integer | string
    calls_per_test: int | None = None  # whole-test check: exactly this many calls
    path: Path = Path("fields.yaml")
    kind: str = "tapproxy"

    @property
    def per_test(self) -> bool:
        return self.calls_per_test is not None

    @property
    def _item(self) -> ContractItem:
        return ContractItem(f"GET {self.path_only}", f"{self.callee} GET {self.path_only}",
                            Location(self.path, 3, 5), callee=self.callee)

    def items(self) -> Sequence[ContractItem]:
        return [self._item]

    def check(self, x: Exchange) -> Verdict | None:
        if x.callee.name != self.callee or x.request.path_only != self.path_only:
            return None
        body = json.loads(x.response.body) if x.response and x.response.body else {}
        value = body.get(self.field)
        if isinstance(value, _TYPES[self.type_name]) and not isinstance(value, bool):
            return Verdict(self._item.id)
        actual = "missing" if self.field not in body else json.dumps(value)
        return Verdict(self._item.id, (Mismatch(
            "body-type" if self.field in body else "missing-field",
            f"/{self.field}: expected {self.type_name}, got {actual}",
            Location(self.path, 7, 9), self._item.id, f"/{self.field}", "response",
            self.type_name, actual, x.id, x.test, x.caller.name, x.callee.name,
            json.dumps(body)),))

    def check_test(self, test: str | None, hits: Sequence[Hit]) -> Sequence[Mismatch]:
        if self.calls_per_test is None or len(hits) == self.calls_per_test:
            return ()
        return (Mismatch("count", f"{self._item.id}: expected {self.calls_per_test} calls, "
                         f"got {len(hits)}", self._item.location, self._item.id,
                         expected=f"{self.calls_per_test} calls", actual=f"{len(hits)} calls",
                         test=test),)

    def check_run(self, counts: Mapping[str, int]) -> Sequence[Mismatch]:
        return ()
