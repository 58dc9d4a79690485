"""The HTML report in a real browser: headless Chromium (Debian's, never a downloaded one)
driven by Playwright, opening the file from disk.

A recording of real aiohttp services through the real proxy (a cascade failure with
hostile values) is reported with the real `tapproxy report`; the page must draw its
waterfall and map, open an exchange on click, filter, never run recorded script, and ask
the network for nothing. A generated 10,000-exchange capture shows that a large report
opens and scrolls; its time and size are printed, not asserted.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from tapproxy.capture import CaptureWriter, new_header, open_capture
from tapproxy.capture.model import (
    Exchange,
    Headers,
    Party,
    Request,
    Response,
    TestCase,
    Timing,
)
from tests.conftest import missing_tool, run_cli
from tests.report.recorded_shop import HOSTILE_BODY, HOSTILE_HEADER, HOSTILE_TEST, Shop

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_tool("playwright is not installed (pip install -e '.[test]')")
    if CHROMIUM is None:
        missing_tool("chromium is not installed (scripts/setup installs Debian's package)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Opened:
    """A report opened in a page, with every request it made and every dialog it opened."""

    def __init__(self, browser, path: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []

        def log(route):
            self.requests.append(route.request.url)
            route.continue_()

        self.context.route("**/*", log)
        self.page = self.context.new_page()
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready]", timeout=30_000)
        assert self.page.evaluate("document.body.dataset.ready") == "1", self.errors

    def ink(self, selector: str) -> float:
        """The share of non-white pixels in a screenshot of `selector`, counted by the
        browser itself (a canvas) in a page of its own."""
        png = self.page.locator(selector).screenshot()
        counter = self.context.new_page()
        share = counter.evaluate("""async (b64) => {
            const img = new Image();
            img.src = "data:image/png;base64," + b64;
            await img.decode();
            const c = document.createElement("canvas");
            c.width = img.width; c.height = img.height;
            const g = c.getContext("2d");
            g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data;
            let ink = 0;
            for (let i = 0; i < d.length; i += 4)
                if (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235) ink++;
            return ink / (d.length / 4);
        }""", base64.b64encode(png).decode())
        counter.close()
        return share

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def shop_report(services, start_proxy, tmp_path) -> Path:
    capture = Shop(services).record(start_proxy)
    out = tmp_path / "report.html"
    r = run_cli("report", capture, "-o", out)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture
def opened(browser, shop_report):
    page = Opened(browser, shop_report)
    yield page
    page.close()


def _row_texts(page) -> list[str]:
    return page.locator("#waterfall .row .name").all_inner_texts()


def test_the_failing_test_opens_with_its_waterfall_map_and_root(opened):
    page = opened.page
    # The failing test is selected first: its four calls, tree order, the root marked.
    assert page.locator("#tests .test.selected .tname").inner_text() == HOSTILE_TEST
    rows = _row_texts(page)
    assert [r.split(" ", 1)[1].rsplit(" ", 2)[0] for r in rows] == [
        "tests → gateway", "gateway → orders", "orders → inventory", "orders → payments"]
    assert page.locator("#waterfall .row .bar.client").count() == 4
    assert page.locator("#waterfall .row .bar.server").count() == 4
    root = page.locator("#waterfall .row.role-root")
    assert root.count() == 1 and "orders → payments" in root.inner_text()
    assert page.locator("#waterfall .row.role-propagated").count() == 2
    story = page.locator("#story").inner_text()
    assert "First point of failure: #4 orders → payments POST /charges 500" in story
    assert "why: status 500; it made no calls" in story
    assert "propagated: gateway 502, orders 502" in story
    # The map: every service seen on the wire, the root's callee and edge marked.
    names = page.locator("#map .node text").all_text_contents()
    assert sorted(names) == ["gateway", "inventory", "orders", "payments", "tests"]
    assert page.locator("#map .node.root text").text_content() == "payments"
    assert page.locator("#map .edge").count() == 4
    assert page.locator("#map .edge.root text").text_content().startswith("1× · 100% err")
    assert opened.ink("#waterfall") > 0.02
    assert opened.ink("#map") > 0.02


def test_a_click_opens_the_exchange(opened):
    page = opened.page
    page.locator("#waterfall .row.role-root .name").click()
    detail = page.locator("#detail")
    detail.wait_for(state="visible")
    text = detail.inner_text()
    assert "POST http://127.0.0.1:" in text and "/charges HTTP/1.1" in text
    assert '"card": "bad"' in text  # the request body, pretty-printed
    assert "card declined" in text and "response_end" in text
    assert "parent inferred by\ttiming" in text
    page.locator("#waterfall .row .name").first.click()
    page.wait_for_function("() => document.querySelector('#detail h3').textContent.includes('#1')")
    assert HOSTILE_HEADER in detail.inner_text()  # shown as text


def test_filters_by_status_service_and_search(opened):
    page = opened.page
    page.locator("#tests .test.all").click()
    assert page.locator("#shown").inner_text() == "8 of 8 exchanges"
    page.select_option("#status", "5")
    assert page.locator("#shown").inner_text() == "3 of 8 exchanges"
    assert all(s in ("500", "502") for s in
               page.locator("#waterfall .row .status").all_inner_texts())
    page.select_option("#status", "")
    page.select_option("#service", label="inventory")
    assert page.locator("#shown").inner_text() == "2 of 8 exchanges"
    page.select_option("#service", "")
    page.fill("#search", "test_checkout_0")
    page.wait_for_function(
        "() => document.querySelector('#shown').textContent === '4 of 8 exchanges'")
    assert page.locator("#tests .test:not(.all):not([hidden])").count() == 1


def test_hostile_recorded_values_stay_text(opened):
    page = opened.page
    page.locator("#waterfall .row.role-root .name").click()
    page.locator("#detail").wait_for(state="visible")
    page.locator("#waterfall .row .name").first.click()
    page.locator("#tests .test.all").click()
    assert page.evaluate("window.__pwned") is None
    assert opened.dialogs == []
    assert page.locator("#tests img, #view img, #detail img, #detail b").count() == 0
    assert HOSTILE_TEST in page.locator("#tests").inner_text()
    page.locator("#tests .test.bad").click()
    page.locator("#waterfall .row.role-root .name").click()
    page.wait_for_function(
        "() => document.querySelector('#detail').textContent.includes('declined')")
    assert HOSTILE_BODY.strip().split(" ")[0] in page.locator("#detail").inner_text()
    assert page.evaluate("window.__pwned") is None


def test_the_page_asks_the_network_for_nothing(opened):
    page = opened.page
    page.locator("#waterfall .row .name").first.click()
    page.locator("#detail").wait_for(state="visible")
    assert opened.requests, "the route log saw not even the page itself"
    assert all(u.startswith(("file://", "data:")) for u in opened.requests), opened.requests


# -- a large capture ---------------------------------------------------------------------


def _party(name: str) -> Party:
    return Party(name, "service", f"127.0.0.1:{8000 + len(name)}")


def _generated_capture(path: Path, tests: int, per_test: int, index: bool = True) -> int:
    """`tests` tests of `per_test` calls each: tests → gateway → orders → payments and
    inventory, one payments 500 per failing test; JSON bodies, a few headers (`index`:
    closed with the capture's index, as a cleanly stopped recorder writes it)."""
    t = 1_700_000_000_000_000_000
    count = 0
    w = CaptureWriter(path, new_header(), index=index)
    try:
        for n in range(tests):
            name = f"tests/test_load.py::test_case[{n}]"
            start = t
            failed = n % 10 == 0
            for k in range(per_test):
                caller, callee = [("tests", "gateway"), ("gateway", "orders"),
                                  ("orders", "inventory"), ("orders", "payments")][k % 4]
                status = 500 if failed and k == per_test - 1 else 200
                # Ids differ per call, as real ones do: they decide how well a report packs.
                rid = uuid.uuid4().hex
                headers = Headers((("content-type", "application/json"),
                                   ("user-agent", "python-httpx/0.28"), ("x-request-id", rid)))
                body = (b'{"order": "%s", "items": [{"sku": "tea", "qty": %d}], "note": "ok"}'
                        % (rid.encode(), k))
                w.write(Exchange(
                    str(uuid.UUID(int=count)), _party(caller), _party(callee),
                    Request("POST", "http", callee, 8000, f"/api/{callee}/{k}", "HTTP/1.1",
                            headers, body),
                    Timing(t, t + 100_000, t + 900_000, t + 1_000_000 + k * 1000),
                    Response(status, "OK", "HTTP/1.1", headers, body),
                    test=name, test_source="control"))
                t += 1_200_000
                count += 1
            w.write(TestCase(name, start, t, "failed" if failed else "passed"))
    finally:
        w.close()
    return count


def test_ten_thousand_exchanges_open_and_scroll(browser, tmp_path):
    capture = tmp_path / "large.tap"
    assert _generated_capture(capture, 100, 100) == 10_000
    out = tmp_path / "large.html"
    began = time.monotonic()
    r = run_cli("report", capture, "-o", out, timeout=300)
    written = time.monotonic() - began
    assert r.returncode == 0, r.stderr
    size = out.stat().st_size
    with open_capture(capture) as reader:
        assert sum(1 for _ in reader.exchanges()) == 10_000
    began = time.monotonic()
    opened = Opened(browser, out)
    wall = time.monotonic() - began
    page = opened.page
    try:
        ready_ms = page.evaluate("window.__tapReady")
        page.locator("#tests .test.all").click()
        assert page.locator("#shown").inner_text() == "10000 of 10000 exchanges"
        # Virtualised: a screenful of rows in the document, not ten thousand.
        shown = page.locator("#waterfall .row").count()
        assert 10 <= shown <= 100
        page.locator("#waterfall").evaluate("w => { w.scrollTop = w.scrollHeight; }")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#waterfall .row .num')].some("
            "e => e.textContent.trim() === '#100')")
        assert page.locator("#waterfall .row").count() <= 100
        # The list re-draws its rows as the scroll settles: a click can land on a row
        # being replaced, so click again until the detail opens (a few tries).
        for _ in range(5):
            page.locator("#waterfall .row .name").last.click()
            try:
                page.locator("#detail").wait_for(state="visible", timeout=5000)
                break
            except Exception as e:  # playwright's TimeoutError: the click missed its row
                if type(e).__name__ != "TimeoutError":
                    raise
        assert page.locator("#detail").is_visible()
        assert "/api/" in page.locator("#detail h3").inner_text()
    finally:
        opened.close()
    print(f"\n10,000 exchanges: report written in {written:.1f} s, {size / 1e6:.2f} MB "
          f"({size / 10 / 1024:.0f} KiB per 1,000 exchanges); opened from file:// in "
          f"{ready_ms:.0f} ms (script ready), {wall:.2f} s until drawn as Playwright saw it")


def test_contract_mismatches_show_expected_against_actual(browser, services, start_proxy,
                                                          tmp_path):
    capture = Shop(services).record(start_proxy)
    contract = tmp_path / "gateway.yaml"
    contract.write_text("tapproxy: 1\ninteractions:\n  - id: checkout\n    request: "
                        "{method: POST, path: /checkout}\n    response: {status: 200}\n")
    out = tmp_path / "report.html"
    assert run_cli("report", capture, "-o", out, "--contract", contract).returncode == 0
    opened = Opened(browser, out)
    try:
        page = opened.page
        page.locator("#tests .test.ok").click()  # the passing test: its drift is the root
        assert "First point of failure: #1 tests → gateway" in page.locator("#story").inner_text()
        table = page.locator("#contract table.mismatches")
        assert page.locator("#contract h2").inner_text() == "Contract mismatches (1)"
        assert table.locator("td.expected").all_inner_texts() == ["200"]
        assert table.locator("td.actual").all_inner_texts() == ["201"]
        table.locator("button.link").click()
        page.locator("#detail .mismatches").wait_for(state="visible")
        assert "status" in page.locator("#detail .mismatches").inner_text()
    finally:
        opened.close()


def test_a_cut_off_capture_opens_with_a_banner(browser, tmp_path):
    capture = tmp_path / "cut.tap"
    _generated_capture(capture, 3, 4, index=False)  # as a killed recorder leaves it
    capture.write_bytes(capture.read_bytes()[:-40])
    out = tmp_path / "report.html"
    assert run_cli("report", capture, "-o", out).returncode == 2
    opened = Opened(browser, out)
    try:
        page = opened.page
        banner = page.locator("#banner")
        assert banner.is_visible()
        assert banner.inner_text().startswith(f"Incomplete capture: {capture}: ends inside")
        page.locator("#tests .test.all").click()
        assert page.locator("#shown").inner_text() == "12 of 12 exchanges"
    finally:
        opened.close()


def test_spans_a_service_sent_are_drawn_under_their_call(browser, tmp_path):
    from tests.report.sent_spans import HOSTILE_SPAN, sent_spans_capture

    out = tmp_path / "report.html"
    r = run_cli("report", sent_spans_capture(tmp_path / "run.tap"), "-o", out)
    assert r.returncode == 0, r.stderr
    opened = Opened(browser, out)
    try:
        page = opened.page
        names = _row_texts(page)
        assert len(names) == 5
        assert names[1].startswith("#2 shop → payments POST /charges")
        assert names[2] == "payments INTERNAL card processor sent by the service"
        assert names[3] == f"payments CLIENT {HOSTILE_SPAN} sent by the service"
        assert names[4] == "payments INTERNAL cache warm sent by the service"
        sent = page.locator("#waterfall .row.sent")
        assert sent.count() == 3 and page.locator("#waterfall .row.sent .bar.sent").count() == 3
        # Indented under its parent call, one step deeper than it.
        pad = [page.locator("#waterfall .row .name").nth(i).evaluate(
            "e => parseFloat(e.style.paddingLeft)") for i in range(5)]
        assert pad[1] < pad[2] < pad[3] and pad[4] == pad[0]
        card = sent.nth(0)
        assert "failed" in card.get_attribute("class")
        assert card.locator(".status").inner_text() == "error"
        assert card.get_attribute("title") == "parent: #2 (from the span's parent id)"
        card.locator(".name").click()
        detail = page.locator("#detail")
        detail.wait_for(state="visible")
        text = detail.inner_text()
        assert "sent by the service" in text and "error: card declined" in text
        assert "card.network\tvisa" in text and "card.retries\t2" in text
        assert "parent\t#2 shop → payments POST /charges" in text
        sent.nth(1).locator(".name").click()
        page.wait_for_function("() => document.querySelector('#detail h3')"
                               ".textContent.includes('alert')")
        assert HOSTILE_SPAN in detail.locator("h3").inner_text()  # shown as text
        assert "<img src=x onerror=alert(2)>" in detail.inner_text()
        assert page.locator("#detail img, #waterfall script, #detail script").count() == 0
        assert opened.dialogs == [] and opened.errors == []
    finally:
        opened.close()
