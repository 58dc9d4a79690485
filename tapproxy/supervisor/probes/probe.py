"""One Python HTTP client calling each URL: `python3 probe.py LIBRARY URL...`.

Prints `URL STATUS` or `URL error: MESSAGE` per URL; exits 3 when LIBRARY is not
importable. Used by `tapproxy env --check` and the client tests; it sets nothing about
proxies or certificates itself, so what it does is what the environment makes it do.
"""

import asyncio
import sys

TIMEOUT = 10


def _urllib(url):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _requests(url):
    import requests

    return requests.get(url, timeout=TIMEOUT).status_code


def _httpx(url):
    import httpx

    return httpx.get(url, timeout=TIMEOUT).status_code


def _aiohttp(url, trust_env=False):
    import aiohttp

    async def get():
        async with aiohttp.ClientSession(trust_env=trust_env) as s, s.get(
                url, timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as r:
            await r.read()
            return r.status

    return asyncio.run(get())


CALLS = {
    "urllib": _urllib,
    "requests": _requests,
    "httpx": _httpx,
    "aiohttp": _aiohttp,
    "aiohttp-trust-env": lambda url: _aiohttp(url, trust_env=True),
}
MODULES = {"urllib": "urllib.request", "aiohttp-trust-env": "aiohttp"}


def main():
    library, urls = sys.argv[1], sys.argv[2:]
    try:
        __import__(MODULES.get(library, library))
    except ImportError:
        print(f"missing: {library}")
        sys.exit(3)
    for url in urls:
        try:
            print(f"{url} {CALLS[library](url)}", flush=True)
        except Exception as e:
            cause = e
            while cause.__cause__ is not None or cause.__context__ is not None:
                cause = cause.__cause__ or cause.__context__
            text = f"{type(cause).__name__}: {cause}".replace("\n", " ")
            print(f"{url} error: {text}", flush=True)


if __name__ == "__main__":
    main()
