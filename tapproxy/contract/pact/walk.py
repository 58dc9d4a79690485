"""Walking an expected and an actual JSON value together under Pact's matching rules.

A port of pact_matching's `compare_json` and its rule-driven map and list comparisons:
requests allow no unexpected keys, responses do (Pact's "be liberal in what you
accept"). Each difference is a `Problem` naming the kind of mismatch, the place (path
tokens from "$") and the rule list that judged it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tapproxy.contract.pact.matchers import json_equal, json_type, match_value
from tapproxy.contract.pact.rules import STAR, Category, Rule, RuleList

__all__ = ["Ctx", "Problem", "compare_json", "compare_lists", "judge"]

Path = tuple[str, ...]

@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # method, path, query, header, status, body-value, body-type, ...
    where: Path | str  # body path tokens; header, query name; "" for the part
    message: str
    expected: str = ""
    actual: str = ""
    rules: str = ""  # pointer of the rule list that judged, when one did


# --- the generic walk (pact_matching::json and ::matchingrules) ----------------------


@dataclass(frozen=True, slots=True)
class Ctx:
    rules: Category
    allow_extra: bool  # responses: unexpected keys are fine

    def using(self, rules: Category) -> Ctx:
        return Ctx(rules, self.allow_extra)


def _dumps(v: object) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def judge(rl: RuleList, expected: object, actual: object, flavour: str = "json"
          ) -> list[tuple[str, str]]:
    """(rule kind, why) for each rule of `rl` the value breaks, honouring `combine`."""
    if not rl.rules:
        return [("", "no matcher found")]
    found = [(r.kind, match_value(r, expected, actual, rl.cascaded, flavour))
             for r in rl.rules]
    bad = [(kind, why) for kind, why in found if why is not None]
    if rl.any_of and len(bad) < len(found):
        return []
    return bad  # type: ignore[return-value]


def _type_kind(rule_kind: str) -> str:
    return "body-type" if rule_kind in ("type", "integer", "decimal", "number", "boolean",
                                        "null") else "body-value"


def compare_json(path: Path, e: object, a: object, ctx: Ctx) -> list[Problem]:
    if isinstance(e, dict):
        if not isinstance(a, dict):
            return [Problem("body-type", path, f"expected an object, got {json_type(a)}",
                            _dumps(e)[:80], _dumps(a)[:80])]
        return _compare_maps(path, e, a, ctx)
    if isinstance(e, list):
        if not isinstance(a, list):
            return [Problem("body-type", path, f"expected an array, got {json_type(a)}",
                            _dumps(e)[:80], _dumps(a)[:80])]
        return compare_lists(path, e, a, ctx)
    if ctx.rules.defined(path):
        rl = ctx.rules.best(path)
        return [Problem(_type_kind(kind), path, why, _dumps(e), _dumps(a), rl.pointer)
                for kind, why in judge(rl, e, a)]
    if json_equal(e, a):
        return []
    kind = "body-value" if json_type(e) == json_type(a) or \
        {json_type(e), json_type(a)} <= {"Integer", "Decimal"} else "body-type"
    return [Problem(kind, path, f"expected {_dumps(e)}, got {_dumps(a)}", _dumps(e),
                    _dumps(a))]


def _map_rule(rule: Rule, e: dict, a: dict, cascaded: bool) -> str | None:
    kind = rule.kind
    if kind in ("regex", "values", "arrayContains", "eachKey", "eachValue"):
        return None
    if kind == "type":
        if cascaded:
            return None
        if rule.min is not None and len(a) < rule.min:
            return f"expected at least {rule.min} entries, got {len(a)}"
        if rule.max is not None and len(a) > rule.max:
            return f"expected at most {rule.max} entries, got {len(a)}"
        return None
    if kind == "equality":
        return None if json_equal(e, a) else f"expected {_dumps(e)}, got {_dumps(a)}"
    if kind == "notEmpty":
        return None if a else "expected a non-empty object"
    return f"rule {kind} cannot judge an object"


def _compare_maps(path: Path, e: dict, a: dict, ctx: Ctx) -> list[Problem]:
    if not e and not ctx.allow_extra and a:
        return [Problem("extra-field", path, f"expected an empty object, got {_dumps(a)[:60]}",
                        "{}", _dumps(a)[:80])]
    out: list[Problem] = []
    if ctx.rules.defined(path):
        rl = ctx.rules.best(path)
        for rule in rl.rules:
            out += _map_with_rule(rule, rl, path, e, a, ctx)
        return out
    out += _match_keys(path, e, a, ctx)
    for key, value in e.items():
        if key in a:
            out += compare_json((*path, key), value, a[key], ctx)
    return out


def _map_with_rule(rule: Rule, rl: RuleList, path: Path, e: dict, a: dict, ctx: Ctx
                   ) -> list[Problem]:
    out: list[Problem] = []
    if not rl.cascaded and rule.kind in ("values", "eachValue", "arrayContains"):
        sub = ctx
        if rule.kind == "eachValue":
            sub = ctx.using(ctx.rules.with_entries(
                (((*path, STAR), RuleList(rule.rules, False, False, rl.pointer)),)))
        first = next(iter(e.values()), None) if e else None
        for key, value in a.items():
            if key in e:
                out += compare_json((*path, key), e[key], value, sub)
            elif e:
                out += compare_json((*path, key), first, value, sub)
        return out
    problem = _map_rule(rule, e, a, rl.cascaded)
    if problem:
        out.append(Problem("body-value", path, problem, _dumps(e)[:80], _dumps(a)[:80],
                           rl.pointer))
    out += _match_keys(path, e, a, ctx)
    for key, value in e.items():
        if key in a:
            out += compare_json((*path, key), value, a[key], ctx)
    return out


def _match_keys(path: Path, e: dict, a: dict, ctx: Ctx) -> list[Problem]:
    out: list[Problem] = []
    exact = ctx.rules.exact(path)
    if not any(r.kind in ("values", "eachValue", "eachKey") for r in exact):
        for key in e:
            if key not in a:
                out.append(Problem("missing-field", (*path, key), f"missing field {key!r}",
                                   _dumps(e[key])[:80], ""))
        if not ctx.allow_extra:
            for key in a:
                if key not in e:
                    out.append(Problem("extra-field", (*path, key),
                                       f"unexpected field {key!r}", "", _dumps(a[key])[:80]))
    for rule in exact:
        if rule.kind != "eachKey":
            continue
        for sub in rule.rules:
            for key in a:
                problem = match_value(sub, "", key, False, "text")
                if problem:
                    out.append(Problem("body-value", (*path, key), f"key: {problem}", "",
                                       key))
    return out


def _list_rule(rule: Rule, e: list, a: list, cascaded: bool) -> str | None:
    kind = rule.kind
    if kind == "type":
        if cascaded:
            return None
        if rule.min is not None and len(a) < rule.min:
            return f"expected at least {rule.min} item(s), got {len(a)}"
        if rule.max is not None and len(a) > rule.max:
            return f"expected at most {rule.max} item(s), got {len(a)}"
        return None
    if kind == "equality":
        return None if json_equal(e, a) else f"expected {_dumps(e)[:60]}, got {_dumps(a)[:60]}"
    if kind == "notEmpty":
        return None if a else "expected a non-empty array"
    if kind in ("null", "statusCode"):
        return f"rule {kind} cannot judge an array"
    return None


def compare_lists(path: Path, e: list, a: list, ctx: Ctx,
                   compare=None) -> list[Problem]:
    compare = compare or compare_json
    if ctx.rules.defined(path):
        return _lists_with_rules(path, ctx.rules.best(path), e, a, ctx, compare)
    if not e and a:
        return [Problem("extra-field", path, f"expected an empty array, got {len(a)} item(s)",
                        "[]", _dumps(a)[:80])]
    out: list[Problem] = []
    for i, value in enumerate(e):
        if i < len(a):
            out += compare((*path, str(i)), value, a[i], ctx)
        elif not ctx.rules.defined((*path, str(i))):
            out.append(Problem("missing-field", (*path, str(i)), f"missing item {i}",
                               _dumps(value)[:80], ""))
    if len(a) > len(e):
        out.append(Problem("extra-field", (*path, str(len(e))),
                           f"expected {len(e)} item(s), got {len(a)}", str(len(e)),
                           str(len(a))))
    return out


def _lists_with_rules(path: Path, rl: RuleList, e: list, a: list, ctx: Ctx, compare
                      ) -> list[Problem]:
    if not rl.rules:
        return [Problem("body-value", path, "no matcher found", rules=rl.pointer)]
    results = [_list_with_rule(r, rl, path, e, a, ctx, compare) for r in rl.rules]
    if rl.any_of and any(not r for r in results):
        return []
    return [p for r in results for p in r]


def _list_with_rule(rule: Rule, rl: RuleList, path: Path, e: list, a: list, ctx: Ctx,
                    compare) -> list[Problem]:
    if not e:
        return []
    out: list[Problem] = []
    if rule.kind == "arrayContains":
        variants = rule.variants or tuple(
            (i, Category("body", (((), RuleList((Rule("equality"),))),)))
            for i in range(len(e)))
        for index, rules in variants:
            if index >= len(e):
                out.append(Problem("body-value", path, f"variant {index} is not in the "
                                   "expected array", rules=rl.pointer))
                continue
            sub = ctx.using(_rooted(rules))
            if not any(not compare(("$",), e[index], item, sub) for item in a):
                out.append(Problem("body-value", path,
                                   f"no item matches variant {index} ({_dumps(e[index])[:40]})",
                                   _dumps(e[index])[:80], _dumps(a)[:80], rl.pointer))
        return out
    if rule.kind == "eachValue":
        if rl.cascaded:
            return []
        sub = ctx.using(ctx.rules.with_entries(
            (((*path, STAR), RuleList(rule.rules, False, False, rl.pointer)),)))
        return _list_contents(path, e, a, sub, compare)
    problem = _list_rule(rule, e, a, rl.cascaded)
    if problem:
        kind = "body-value"
        if rule.kind == "type" and rule.min is not None and len(a) < rule.min:
            kind = "missing-field"
        elif rule.kind == "type" and rule.max is not None and len(a) > rule.max:
            kind = "extra-field"
        out.append(Problem(kind, path, problem, _dumps(e)[:80], _dumps(a)[:80], rl.pointer))
    return out + _list_contents(path, e, a, ctx, compare)


def _rooted(rules: Category) -> Category:
    """arrayContains variant rules are written from "$"; an empty path means "$"."""
    return rules.with_entries(tuple((expr or ("$",), rl) for expr, rl in rules.entries))


def _list_contents(path: Path, e: list, a: list, ctx: Ctx, compare) -> list[Problem]:
    out: list[Problem] = []
    padded = list(e) + [e[0]] * (len(a) - len(e)) if e and len(a) > len(e) else e
    for i, value in enumerate(padded):
        if i < len(a):
            out += compare((*path, str(i)), value, a[i], ctx)
        elif not ctx.rules.defined((*path, str(i))):
            out.append(Problem("missing-field", (*path, str(i)), f"missing item {i}",
                               _dumps(value)[:80], ""))
    return out
