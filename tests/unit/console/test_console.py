"""The console's pure parts (SPEC §14.2): maker-checker rules, the users file, the lines compared,
and the sign-in page's CSRF check (Starlette's TestClient, no database)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from services.console.app import create_app
from services.console.config import DEFAULT_USERS_FILE, ConsoleConfig
from services.console.overrides import (
    Draft,
    OpenHold,
    evidence_lines,
    problems_with_decision,
    problems_with_request,
)
from services.console.readers import compared_lines
from services.console.users import UsersFileError, hash_password, load_users, parse_users
from services.matching.config import SPEC_DEFAULT_ROLES, parse_roles
from shared import config
from shared.settings import Settings

SHIPPED_PEOPLE = (
    "ap.clerk@example.com",
    "ap.lead@example.com",
    "ops.lead@example.com",
    "procurement.lead@example.com",
    "controller@example.com",
    "treasurer@example.com",
)


def draft(**kw: object) -> Draft:
    base: dict[str, object] = {
        "request_id": "ovr-0123456789abcdef",
        "invoice_id": "inv-1",
        "hold_reasons": ("price_mismatch",),
        "reason_code": "price_agreed",
        "justification": "agreed by mail",
        "evidence": ("mail://x",),
    }
    return Draft(**{**base, **kw})  # type: ignore[arg-type]


PRICE_HOLD = [OpenHold("price_mismatch", "ap", True)]


def test_a_complete_request_on_an_open_hold_has_no_problem() -> None:
    assert problems_with_request(draft(), PRICE_HOLD) == []


@pytest.mark.parametrize(
    ("change", "holds", "expected"),
    [
        ({"request_id": "ovr-x"}, PRICE_HOLD, "The form was altered"),
        ({}, None, "No invoice with id 'inv-1'"),
        ({"hold_reasons": ("qty_over_received",)}, PRICE_HOLD, "is not open on invoice inv-1"),
        ({}, [], "already released"),
        ({}, [OpenHold("price_mismatch", "ap", False)], "cannot be released by override"),
        ({"hold_reasons": ()}, PRICE_HOLD, "Choose at least one hold"),
        ({"reason_code": "<b>"}, PRICE_HOLD, "reason code"),
        ({"justification": "  "}, PRICE_HOLD, "A justification is required"),
        ({"evidence": ()}, PRICE_HOLD, "At least one evidence link"),
    ],
)
def test_a_bad_request_is_refused_with_a_reason(
    change: dict[str, object], holds: list[OpenHold] | None, expected: str
) -> None:
    problems = problems_with_request(draft(**change), holds)
    assert any(expected in p for p in problems), problems


def test_approval_needs_another_person_with_the_queue_role() -> None:
    roles = SPEC_DEFAULT_ROLES
    ok = problems_with_decision("ap.lead@example.com", "ap.clerk@example.com", ["ap"], roles, verb="approve")
    assert ok == []
    own = problems_with_decision("AP.Lead@example.com", "ap.lead@example.com", ["ap"], roles, verb="approve")
    assert any("your own request" in p for p in own)
    lacking = problems_with_decision(
        "ap.lead@example.com", "ap.clerk@example.com", ["ops"], roles, verb="approve"
    )
    assert any("no role for the queue ops" in p for p in lacking)
    assert (
        problems_with_decision(
            "controller@example.com", "ap.clerk@example.com", ["ops", "ap"], roles, verb="x"
        )
        == []
    )


def test_evidence_is_one_link_per_non_empty_line_without_repeats() -> None:
    assert evidence_lines(" a \n\n b\na\n") == ("a", "b")


def test_the_shipped_users_file_lets_every_person_of_the_spec_in_with_the_local_password() -> None:
    users = load_users(DEFAULT_USERS_FILE)
    assert set(users.by_email) == set(SHIPPED_PEOPLE)
    for email in SHIPPED_PEOPLE:
        assert users.authenticate(email, "local-dev-" + email.split("@")[0]) is not None
        assert users.authenticate(email, "wrong") is None
    assert users.authenticate("nobody@example.com", "local-dev-nobody") is None
    # The roles file the console checks approvals against is matching's own.
    assert parse_roles(config.roles_document(Settings())).may_release("ops.lead@example.com", "ops")


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"people": {}}, "users: must be a mapping"),
        ({"users": {"not-an-email": {"password_hash": "$argon2id$x"}}}, "e-mail address"),
        ({"users": {"a@example.com": {"password_hash": "plain"}}}, "not an argon2 hash"),
        ({"users": {"a@example.com": {}}}, "password_hash: missing"),
    ],
)
def test_a_malformed_users_file_names_the_bad_key(document: object, where: str) -> None:
    with pytest.raises(UsersFileError, match=where):
        parse_users(document)


def test_compared_lines_flag_a_price_or_quantity_the_po_and_receipts_do_not_share() -> None:
    invoice = {
        "lines": [
            {
                "line_id": "1",
                "po_line_id": "10",
                "quantity": "2",
                "unit_price": "110.00",
                "line_amount": "220.00",
            },
            {
                "line_id": "2",
                "po_line_id": "20",
                "quantity": "5",
                "unit_price": "10.00",
                "line_amount": "50.00",
            },
            {
                "line_id": "3",
                "po_line_id": "30",
                "quantity": "1",
                "unit_price": "7.00",
                "line_amount": "7.00",
            },
        ]
    }
    po = {
        "lines": [
            {"line_id": "10", "quantity": "2", "unit_price": "100.00"},
            {"line_id": "20", "quantity": "5", "unit_price": "10.00"},
            {"line_id": "30", "quantity": "1", "unit_price": "7.00"},
        ]
    }
    receipts = [
        {
            "lines": [{"po_line_id": "10", "quantity": "2"}, {"po_line_id": "20", "quantity": "3"}],
            "reversed_at": None,
        },
        {
            "lines": [{"po_line_id": "30", "quantity": "1"}],
            "reversed_at": "2026-01-01",
        },  # reversed: not counted
    ]
    lines = compared_lines(invoice, po, receipts)
    assert [(ln.line_id, ln.differs) for ln in lines] == [("1", True), ("2", True), ("3", False)]
    assert (lines[1].received_quantity, lines[2].received_quantity) == ("3", None)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    users = tmp_path / "users.yaml"
    users.write_text(f'users:\n  a@example.com:\n    password_hash: "{hash_password("pw")}"\n')
    cfg = ConsoleConfig.load()
    cfg = ConsoleConfig(**{**cfg.__dict__, "users": load_users(users)})
    return TestClient(create_app(cfg))  # no `with`: no lifespan, so no database is needed


def test_sign_in_needs_the_csrf_token_of_the_session_and_the_right_password(client: TestClient) -> None:
    page = client.get("/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    forged = client.post("/signin", data={"email": "a@example.com", "password": "pw"})
    assert forged.status_code == 403 and "CSRF" in forged.text
    wrong = client.post(
        "/signin", data={"csrf_token": token.group(1), "email": "a@example.com", "password": "x"}
    )
    assert wrong.status_code == 401 and "wrong password" in wrong.text
    ok = client.post(
        "/signin",
        data={
            "csrf_token": token.group(1),
            "email": "a@example.com",
            "password": "pw",
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/holds"  # never an open redirect


def test_every_page_asks_for_sign_in_first(client: TestClient) -> None:
    for path in ("/holds", "/holds/h1", "/invoices/inv-1", "/overrides", "/reconciliation", "/deadletter"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?next="), path
    assert client.post("/overrides", data={}).status_code == 403
