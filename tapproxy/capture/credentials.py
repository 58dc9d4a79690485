"""Which names carry a credential: one list for headers, query and form parameters, JSON keys.

Pure functions, no I/O: the recorder's redaction and the span exporters ask the same
question. A name is compared in a normalised form (camelCase split, lower case, `_` as
`-`), so `X-Api-Key`, `api_key`, `apiKey` and `APIKey` are one name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote_plus

__all__ = ["CREDENTIAL_WORDS", "MASK", "NameTest", "mask_path_params", "mask_query",
           "mask_url", "name_test", "normalize_name"]

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
    "jsessionid", "phpsessid",  # servlet and PHP session ids, also as `;jsessionid=` in paths
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


# A path parameter (RFC 3986 3.3, "matrix" parameters): `;name=value` in a segment.
_PATH_PARAM = re.compile(r";([^;/#=]*)=([^;/#]*)")


def mask_path_params(path: str, is_credential: NameTest,
                     mask: str = URL_MASK) -> tuple[str, list[str]]:
    """(path with credential path-parameter values masked, their names), e.g.
    `/cart;jsessionid=0A1B` → `/cart;jsessionid=%3Credacted%3E` (servlet containers put
    the session id there when cookies are off)."""
    if ";" not in path:
        return path, []
    masked: list[str] = []

    def one(m: re.Match) -> str:
        name = unquote_plus(m.group(1))
        if not is_credential(name):
            return m.group(0)
        if name not in masked:
            masked.append(name)
        return f";{m.group(1)}={mask}"

    out = _PATH_PARAM.sub(one, path)
    return (out, masked) if masked else (path, [])


def mask_url(url: str, is_credential: NameTest) -> tuple[str, list[str]]:
    """A URL (or origin-form target) with userinfo, credential path parameters and
    credential query values masked.

    Returns (url, what was masked): query names, `;name` for a path parameter, and
    `userinfo` for `user:pass@`.
    """
    masked: list[str] = []
    head, q, rest = url.partition("?")
    scheme, sep, after = head.partition("://")
    prefix, path = "", head
    if sep:
        authority, slash, tail = after.partition("/")
        if "@" in authority:
            authority = f"{URL_MASK}@{authority.rpartition('@')[2]}"
            masked.append("userinfo")
        prefix, path = f"{scheme}://{authority}", slash + tail
    path, names = mask_path_params(path, is_credential)
    masked.extend(f";{n}" for n in names)
    head = prefix + path
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
