"""Pact files (specification v2, v3, v4) as contracts over recorded traffic.

Our own port of the rules of Pact's reference engine (pact_matching), proven on the
pact-specification cases (docs/contracts.md, "## Pact"):

- `contract`: the `Contract` a Pact file becomes (which exchange, which interaction);
- `read`: the file's interactions, as Pact's models read them;
- `parts`: comparing method, path, query, headers, status and bodies;
- `walk`: the JSON walk under matching rules;
- `rules`: reading rules and choosing the rule list for a value;
- `matchers`: one matcher applied to one value;
- `formats`: Java-style date/time formats.
"""

from tapproxy.contract.pact.contract import PactContract, load

__all__ = ["PactContract", "load"]
