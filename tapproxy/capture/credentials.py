"""Which names carry a credential: one list for headers, query and form parameters, JSON keys.

Pure functions, no I/O: the recorder's redaction and the span exporters ask the same
question. A name is compared in a normalised form (camelCase split, lower case, `_` as
`-`), so `X-Api-Key`, `api_key`, `apiKey` and `APIKey` are one name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote_plus

__all__ = ["CREDENTIAL_WORDS", "MASK", "NameTest", "mask_query", "mask_url", "name_test",
           "normalize_name"]

MASK = "<redacted>"
# What a masked value becomes inside a URL or a form body: MASK, percent-encoded, so the
# URL stays valid and decodes to MASK.
URL_MASK = "%3Credacted%3E"

#: Words that make a name credential-like when they are one of its `-`-separated parts:
#: `password`, `x-password`, `db-password-hash`, `client-secret`, `x-auth-user`,
#: `refresh-token`, `x-amz-signature`, `set-cookie`… but not `tokens`, `author`, `keyword`.
CREDENTIAL_WORDS = (
    "password", "passwd", "pwd", "passphrase", "secret", "token", "api-key", "apikey",
    "access-key", "private-key", "session-id", "sessionid", "auth", "authorization",
    "authentication", "credential", "credentials", "cookie", "sig", "signature",
)
_CREDENTIAL = re.compile(r"(?:^|-)(?:" + "|".join(map(re.escape, CREDENTIAL_WORDS)) + r")(?:-|$)")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

NameTest = Callable[[str], bool]


def normalize_name(name: str) -> str:
    """`X_Api-Key`, `apiKey`, `APIKey` → `x-api-key`, `api-key`, `api-key`."""
    return _CAMEL.sub("-", name.strip()).lower().replace("_", "-")


def name_test(extra: tuple[str, ...] | frozenset[str] = ()) -> NameTest:
    """A predicate: is this name credential-like, or one of `extra` (compared normalised)?"""
    extra_names = frozenset(normalize_name(n) for n in extra)
    verdicts: dict[str, bool] = {}  # names repeat a lot: decide each once

    def is_credential(name: str) -> bool:
        verdict = verdicts.get(name)
        if verdict is None:
            norm = normalize_name(name)
            verdict = norm in extra_names or _CREDENTIAL.search(norm) is not None
            if len(verdicts) < 10_000:  # bounded, whatever names clients invent
                verdicts[name] = verdict
        return verdict

    return is_credential


def mask_query(query: str, is_credential: NameTest, mask: str = URL_MASK) -> tuple[str, list[str]]:
    """(query with credential values masked, names masked); the rest stays byte for byte."""
    if not query:
        return query, []
    masked: list[str] = []
    parts = query.split("&")
    for i, part in enumerate(parts):
        key, sep, value = part.partition("=")
        if not value and not sep:
            continue  # `?flag`: a name without a value hides nothing
        name = unquote_plus(key)
        if is_credential(name):
            parts[i] = f"{key}={mask}"
            if name not in masked:
                masked.append(name)
    return ("&".join(parts), masked) if masked else (query, [])


def mask_url(url: str, is_credential: NameTest) -> tuple[str, list[str]]:
    """A URL (or origin-form target) with userinfo and credential query values masked.

    Returns (url, what was masked): query names, and `userinfo` for `user:pass@`.
    """
    masked: list[str] = []
    head, q, rest = url.partition("?")
    scheme, sep, after = head.partition("://")
    if sep and "@" in after.partition("/")[0]:
        authority, slash, path = after.partition("/")
        head = f"{scheme}://{URL_MASK}@{authority.rpartition('@')[2]}{slash}{path}"
        masked.append("userinfo")
    if q:
        query, frag_sep, fragment = rest.partition("#")
        query, names = mask_query(query, is_credential)
        masked.extend(names)
        rest = f"{query}{frag_sep}{fragment}"
    return (f"{head}{q}{rest}", masked) if masked else (url, [])


def mask_command(command: str, is_credential: NameTest) -> tuple[str, bool]:
    """A command line (arguments joined by spaces) with credential values masked:
    `password=x`, `--token=x`, `--api-key x`, URLs' userinfo and query. (command, masked?)"""
    words = command.split(" ")
    masked = False
    secret_next = False
    for i, word in enumerate(words):
        if secret_next and word:
            words[i], masked, secret_next = MASK, True, False
            continue
        if "://" in word:
            url, names = mask_url(word, is_credential)
            if names:
                words[i], masked = url, True
                continue
        flag = word.lstrip("-")
        name, eq, value = flag.partition("=")
        if eq and value and name and is_credential(name):
            words[i], masked = word[: len(word) - len(value)] + MASK, True
        elif word.startswith("-") and not eq and name and is_credential(name):
            secret_next = True
    return (" ".join(words), True) if masked else (command, False)
