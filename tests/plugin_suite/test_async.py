import aiohttp
import pytest


@pytest.mark.anyio
async def test_async_checkout(shop, tapproxy):
    async with aiohttp.ClientSession() as s, s.post(
            f"{shop.url}/checkout", json={"card": "good"}, proxy=tapproxy.env["HTTP_PROXY"]) as r:
        assert r.status == 201
    assert len(tapproxy.exchanges()) == 3


@pytest.fixture
def anyio_backend():
    return "asyncio"
