"""The console in a real browser (SPEC §14.2): Debian's headless chromium, driven by Selenium
through Debian's chromedriver, against the console process and the five services on real Kafka
and PostgreSQL.

One stack for the module: the demo's documents are published (without the demo's own override),
so matching holds a price mismatch (queue ap) and a quantity over received (queue ops); the tests
clear them through the pages, as people would, and look at what reached `concord.in.commands`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.admin import admin_settings
from shared.kafka_auth import client_options
from shared.publish import Publisher
from shared.topics import IN_COMMANDS
from testkit.scenario import Scenario, build
from tests.e2e.conftest import Stack, running_stack
from tests.kafka_support import LOG_DIR, free_port, isolated_settings, settings_env
from tests.support import ROOT, scratch_service_database

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CLERK, AP_LEAD, OPS_LEAD, CONTROLLER = (
    "ap.clerk@example.com",
    "ap.lead@example.com",
    "ops.lead@example.com",
    "controller@example.com",
)


def password(email: str) -> str:
    return "local-dev-" + email.split("@")[0]


@dataclass
class Console:
    url: str
    stack: Stack
    scenario: Scenario
    console_dsn: str  # concord_admin's, for the tests' own reading

    @property
    def price_held(self) -> str:
        return self.scenario.override_invoice

    @property
    def qty_held(self) -> str:
        return next(i for i, r in self.scenario.expected_held.items() if r == "qty_over_received")


async def publish_scenario(stack: Stack, scenario: Scenario) -> None:
    """The demo's documents as upstream publishes them; matching opens its holds."""
    async with Publisher(stack.settings, source="console-test") as pub:
        for p in scenario.setup:
            if p.event_type != "invoice.submitted":
                await pub.publish_event(p.topic, p.key, p.event_type, p.data)
        await asyncio.sleep(3)  # receipts first keeps the story short; any order converges
        for p in scenario.setup:
            if p.event_type == "invoice.submitted":
                await pub.publish_event(p.topic, p.key, p.event_type, p.data)


async def wait_for_holds(stack: Stack, invoices: set[str], timeout_s: float = 60) -> None:
    conn = await asyncpg.connect(stack.dsns["matching"])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            held = {
                r["invoice_id"]
                for r in await conn.fetch(
                    "SELECT invoice_id FROM holds WHERE status = 'open' AND invoice_id = ANY($1)",
                    list(invoices),
                )
            }
            if held == invoices:
                return
            await asyncio.sleep(0.3)
    finally:
        await conn.close()
    raise TimeoutError(f"matching did not hold {sorted(invoices)} in {timeout_s}s")


def start_console(stack: Stack, db: Any, port: int) -> subprocess.Popen[bytes]:
    settings = stack.settings.model_copy(update={"service": "console", **db.settings()})
    env = settings_env(settings) | {
        "CONCORD_CONSOLE_PORT": str(port),
        "CONCORD_MATCHING_DB_DSN": stack.dsns["matching"],
        "CONCORD_LEDGER_DB_DSN": stack.dsns["ledger"],
        "CONCORD_PAYOUT_RELEASE_DB_DSN": stack.dsns["payout_release"],
    }
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"console-{stack.settings.topic_prefix}log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "services.console"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )


def _answers_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health/ready", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


async def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the console exited with {proc.returncode}; see {LOG_DIR}")
        if await asyncio.to_thread(_answers_ready, url):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the console is not ready")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def console() -> AsyncIterator[Console]:
    settings = isolated_settings(payout_run_interval_s=3600, relay_poll_interval_s=0.1)
    async with AsyncExitStack() as stack_cm:
        stack = await stack_cm.enter_async_context(running_stack(settings))
        db = await stack_cm.enter_async_context(scratch_service_database("console"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_console(stack, db, port)
        try:
            await wait_ready(proc, url)
            scenario = build("c" + uuid.uuid4().hex[:8], datetime.now(UTC).date())
            result = Console(url, stack, scenario, db.admin)
            await publish_scenario(stack, scenario)
            await wait_for_holds(stack, {result.price_held, result.qty_held})
            yield result
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("chromium and chromedriver are missing: run deploy/install.sh (make deps)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


# --- what a person does ----------------------------------------------------------------------------


def submit(driver: Any, button_id: str | None = None, script: str | None = None) -> None:
    """Click a form's button (or run a script that submits one) and wait for the next page: a
    click returns before the browser has navigated, and under load the old page is still there.
    The page is complete before anything is looked up on it: a node found while a redirect was
    still replacing the document "does not belong to the document" by the time it is clicked."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for attempt in range(3):
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        page = driver.find_element(By.TAG_NAME, "html")
        try:
            if script is not None:
                driver.execute_script(script)
            else:
                driver.find_element(By.ID, button_id).click()
        except (StaleElementReferenceException, WebDriverException) as exc:
            detached = isinstance(
                exc, StaleElementReferenceException
            ) or "does not belong to the document" in str(exc)
            if attempt == 2 or not detached:
                raise
            continue
        WebDriverWait(driver, 60).until(lambda d, old=page: _replaced(old))
        return


def _replaced(page: Any) -> bool:
    """The old page is gone. Chrome says so in two ways: a stale element reference, or, while
    the new document is being swapped in, "Node with given id does not belong to the document"
    (seen under load in CI, where selenium's `staleness_of` let it escape)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        page.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def sign_in(driver: Any, c: Console, email: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{c.url}/signin")
    driver.delete_all_cookies()
    driver.get(f"{c.url}/signin")
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(password(email))
    submit(driver, "signin")
    assert driver.find_element(By.ID, "signed-in-as").text == email


def messages(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return " | ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".msg"))


def open_hold_of(driver: Any, c: Console, invoice_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{c.url}/holds")
    row = driver.find_element(By.CSS_SELECTOR, f'tr[data-invoice="{invoice_id}"]')
    driver.get(row.find_element(By.LINK_TEXT, "Open").get_attribute("href"))  # get waits for the page


def request_override(driver: Any, justification: str, evidence: str = "mail://ap/price-agreed") -> str:
    """Fill and send the hold page's request form; the request's id (from the page it lands on)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "reason_code").clear()
    driver.find_element(By.ID, "reason_code").send_keys("price_agreed")
    driver.find_element(By.ID, "justification").send_keys(justification)
    driver.find_element(By.ID, "evidence").send_keys(evidence)
    submit(driver, "request-override")
    match = re.search(r"/overrides/(ovr-[0-9a-f]{16})$", driver.current_url)
    assert match, (driver.current_url, messages(driver))
    return match.group(1)


def approve(driver: Any, c: Console, request_id: str) -> None:

    driver.get(f"{c.url}/overrides/{request_id}")
    submit(driver, "approve")


def wait_for_answer(driver: Any, timeout_s: float = 90) -> str:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = driver.find_elements(By.ID, "answer")
        if found and "waiting" not in found[0].text:
            return str(found[0].text)
        time.sleep(1)
        driver.refresh()
    raise TimeoutError(f"no answer from matching on the page: {messages(driver)}")


def session_client(driver: Any, c: Console) -> httpx.Client:
    """An HTTP client with the browser's session cookie: a form posted again, byte for byte."""
    cookies = {k["name"]: k["value"] for k in driver.get_cookies()}
    return httpx.Client(base_url=c.url, cookies=cookies, follow_redirects=True, timeout=30)


def form_fields(driver: Any, form_id: str) -> dict[str, str]:
    pairs = driver.execute_script(
        "return Array.from(new FormData(document.getElementById(arguments[0])).entries());", form_id
    )
    return dict(pairs)


async def commands_sent(c: Console, override_id: str) -> list[dict[str, Any]]:
    """Every hold.override_requested for this override on concord.in.commands, read to the topic's
    end as it is now (not for a fixed time: under load a short read would miss a record, and an
    assertion that nothing was sent would pass for the wrong reason)."""
    settings = c.stack.settings
    name = settings.topic(IN_COMMANDS)
    consumer = AIOKafkaConsumer(
        **client_options(admin_settings(settings)), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        partitions = [TopicPartition(name, p) for p in range(IN_COMMANDS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 60
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, "concord.in.commands not read to its end in 60 s"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    value = json.loads(r.value)
                    if (
                        value["event_type"] == "hold.override_requested"
                        and value["data"]["override_id"] == override_id
                    ):
                        headers = {k: v.decode() for k, v in (r.headers or ())}
                        found.append({"value": value, "headers": headers})
    finally:
        await consumer.stop()
    return found


async def request_row(c: Console, request_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(c.console_dsn)
    try:
        return await conn.fetchrow("SELECT * FROM override_requests WHERE request_id = $1", request_id)
    finally:
        await conn.close()


# --- the tests -------------------------------------------------------------------------------------


async def test_the_queue_page_lists_a_hold_created_a_moment_earlier(console: Console, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, console, CLERK)
    browser.get(f"{console.url}/holds?queue=ap")
    rows = browser.find_elements(By.CSS_SELECTOR, f'tr[data-invoice="{console.price_held}"]')
    assert len(rows) == 1 and "price_mismatch" in rows[0].text
    assert int(browser.find_element(By.CSS_SELECTOR, '[data-queue="ap"] b').text) >= 1
    browser.get(f"{console.url}/holds?queue=ops&reason=qty_over_received")
    assert browser.find_elements(By.CSS_SELECTOR, f'tr[data-invoice="{console.qty_held}"]')
    assert not browser.find_elements(By.CSS_SELECTOR, f'tr[data-invoice="{console.price_held}"]')


async def test_a_requester_and_an_approver_clear_a_price_hold_end_to_end(
    console: Console, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, console, CLERK)
    open_hold_of(browser, console, console.price_held)
    assert browser.find_element(By.ID, "lines").text  # the invoice, PO and receipt lines compared
    request_id = request_override(browser, "Supplier raised the price after a spec change; agreed.")
    assert browser.find_element(By.ID, "request-status").text == "pending"
    assert await commands_sent(console, request_id) == []  # a request alone sends nothing

    sign_in(browser, console, AP_LEAD)
    approve(browser, console, request_id)
    assert "Approved and sent" in messages(browser)
    assert wait_for_answer(browser).startswith("Released by matching")

    [sent] = await commands_sent(console, request_id)
    data = sent["value"]["data"]
    assert (data["requested_by"], data["approved_by"]) == (CLERK, AP_LEAD)  # the signed-in people
    assert data["hold_reasons"] == ["price_mismatch"] and sent["headers"].get("concord-signature")
    browser.get(f"{console.url}/invoices/{console.price_held}")
    assert "released" in browser.find_element(By.ID, "invoice-holds").text


async def test_self_approval_and_a_person_without_the_role_are_refused(
    console: Console, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, console, CONTROLLER)  # holds every queue's role, but asked for it
    open_hold_of(browser, console, console.qty_held)
    request_id = request_override(browser, "The warehouse confirmed the extra units by phone.")
    approve(browser, console, request_id)
    assert "You cannot approve your own request" in messages(browser)

    sign_in(browser, console, AP_LEAD)  # the ap queue's approver; the hold is in ops
    approve(browser, console, request_id)
    assert "you hold no role for the queue ops" in messages(browser)

    assert browser.find_element(By.ID, "request-status").text == "pending"
    row = await request_row(console, request_id)
    assert row is not None and row["status"] == "pending" and row["sent_at"] is None
    assert await commands_sent(console, request_id) == []


async def test_a_form_posted_without_its_csrf_token_is_refused(console: Console, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, console, CLERK)
    open_hold_of(browser, console, console.qty_held)
    request_id = form_fields(browser, "override-form")["request_id"]
    submit(
        browser,
        script="document.querySelector('#override-form [name=csrf_token]').remove();"
        "document.getElementById('justification').value = 'no token';"
        "document.getElementById('evidence').value = 'mail://x';"
        "document.getElementById('override-form').submit();",
    )
    assert "CSRF" in browser.find_element(By.ID, "error").text
    assert await request_row(console, request_id) is None
    with session_client(browser, console) as http:  # a forged cross-site post: right cookie, no token
        answer = http.post(f"/overrides/{request_id}/approve", data={})
        assert answer.status_code == 403


async def test_bad_input_gets_a_clear_message_and_nothing_is_sent_twice(
    console: Console, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, console, CLERK)
    # An unknown invoice id.
    browser.get(f"{console.url}/invoices/inv-does-not-exist")
    assert "No invoice with id 'inv-does-not-exist'" in browser.find_element(By.ID, "error").text

    # Tampered hidden fields: another invoice id, a request id the console never issued, and a
    # hold that is already released (the price hold the second test cleared).
    for name, value, expected in (
        ("invoice_id", "inv-forged", "No invoice with id 'inv-forged'"),
        ("request_id", "ovr-../../admin", "The form was altered"),
        ("hold_reason", "price_mismatch", "is not open on invoice"),
    ):
        open_hold_of(browser, console, console.qty_held)
        browser.execute_script(
            "const f = document.getElementById('override-form');"
            "f.querySelector('[name=' + arguments[0] + ']').value = arguments[1];"
            "if (arguments[0] === 'hold_reason') f.querySelector('[name=invoice_id]').value = arguments[2];",
            name,
            value,
            console.price_held,
        )
        browser.find_element(By.ID, "justification").send_keys("tampered")
        browser.find_element(By.ID, "evidence").send_keys("mail://x")
        submit(browser, "request-override")
        assert expected in messages(browser), (name, messages(browser))

    # HTML in the justification is shown as text; the form posted twice is one request.
    open_hold_of(browser, console, console.qty_held)
    browser.find_element(By.ID, "justification").send_keys('<b id="injected">bold</b><script>x=1</script>')
    browser.find_element(By.ID, "evidence").send_keys("mail://ops/warehouse-call")
    fields = form_fields(browser, "override-form")
    submit(browser, "request-override")
    request_id = fields["request_id"]
    assert browser.current_url.endswith(f"/overrides/{request_id}")
    assert '<b id="injected">' in browser.find_element(By.ID, "justification").text
    assert browser.find_elements(By.ID, "injected") == []
    with session_client(browser, console) as http:
        again = http.post("/overrides", data=fields)
    assert "already submitted" in again.text and str(again.url).endswith(f"/overrides/{request_id}")

    # Approved by the ops lead: sent once; a second approval (a double click) sends nothing.
    sign_in(browser, console, OPS_LEAD)
    approve(browser, console, request_id)
    assert wait_for_answer(browser).startswith("Released by matching")
    with session_client(browser, console) as http:
        page = http.get(f"/overrides/{request_id}").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        twice = http.post(f"/overrides/{request_id}/approve", data={"csrf_token": token.group(1)})
    assert "already approved" in twice.text and "nothing was sent again" in twice.text
    assert len(await commands_sent(console, request_id)) == 1

    # The controller's request of the self-approval test names the same hold, now released: an
    # approval of it is refused and sends nothing.
    pending = [
        r
        for r in await _requests(console)
        if r["status"] == "pending" and r["invoice_id"] == console.qty_held
    ]
    assert pending
    approve(browser, console, pending[0]["request_id"])
    assert "no longer open (already released)" in messages(browser)
    # Declined instead, with a note: recorded on the request; nothing is sent either way.
    browser.find_element(By.ID, "note").send_keys("hold already released by another request")
    submit(browser, "decline")
    assert "Declined. Nothing was sent" in messages(browser)
    assert browser.find_element(By.ID, "request-status").text == "declined"
    assert await commands_sent(console, pending[0]["request_id"]) == []


async def _requests(c: Console) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(c.console_dsn)
    try:
        return list(await conn.fetch("SELECT * FROM override_requests ORDER BY requested_at"))
    finally:
        await conn.close()
