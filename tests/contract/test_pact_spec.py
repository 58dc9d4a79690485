"""Agreement with Pact's engine on the official pact-specification test cases.

Every vendored request and response case of v2, v3 and v4 goes through tapproxy's Pact
contract (a one-interaction Pact file from `expected`, a recorded Exchange from `actual`)
and its verdict is compared with the case's `match`. XML cases are counted apart: XML
bodies are not judged (docs/contracts.md, "## Pact"). Disagreements are listed in XFAIL
with their reason (and in the docs' table); none may pass silently (strict xfail).
"""

from __future__ import annotations

import json

import pytest

from tests.contract.pact_cases import VERSIONS, Case, cases, verdict_matches

#: (version, case) → why tapproxy's verdict differs from Pact's. Kept in step with the
#: table in docs/contracts.md.
XFAIL: dict[tuple[str, str], str] = {}

ALL = [c for v in VERSIONS for c in cases(v)]


def _id(c: Case) -> str:
    return f"{c.version}/{c.name.removesuffix('.json')}"


@pytest.mark.parametrize("case", [c for c in ALL if not c.xml], ids=_id)
def test_case_agrees_with_pact(case: Case, tmp_path):
    reason = XFAIL.get((case.version, case.name))
    if reason:
        pytest.xfail(reason)
    matched, mismatches = verdict_matches(case, tmp_path)
    assert matched == case.data["match"], (case.data.get("comment"),
                                           [m.message for m in mismatches])


def test_agreement_per_version(tmp_path, capsys):
    figures = {}
    for version in VERSIONS:
        judged = [c for c in ALL if c.version == version and not c.xml]
        agree = sum(verdict_matches(c, tmp_path)[0] == c.data["match"] for c in judged)
        xml = sum(c.xml for c in ALL if c.version == version)
        figures[version] = {"cases": len(judged), "agree": agree, "xml_skipped": xml,
                            "agreement": round(agree / len(judged), 4)}
    with capsys.disabled():
        print("\nPact spec agreement:", json.dumps(figures))
    (tmp_path / "agreement.json").write_text(json.dumps(figures, indent=2))
    for version, f in figures.items():
        assert f["agreement"] >= 0.95, (version, f)
        assert f["cases"] - f["agree"] == sum(1 for v, _ in XFAIL if v == version), \
            "every disagreement is listed in XFAIL"
    # The vendored suites are whole: a lost file would inflate the figures.
    assert {v: f["cases"] + f["xml_skipped"] for v, f in figures.items()} == \
        {"v2": 178, "v3": 195, "v4": 195}
