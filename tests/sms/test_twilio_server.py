"""The fake Twilio server, driven by the real twilio-python client: no Flask, no database."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from tests.twilio_server import FakeTwilio, num_segments, twilio_error

FROM = "+18305550100"
TO = "+12105550123"
SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "twilio_server.py"


def make_http(timeout: float = 5) -> TwilioHttpClient:
    """TwilioHttpClient mounts its pooled adapter for https:// only; the fake is http://."""
    http = TwilioHttpClient(timeout=timeout)
    http.session.mount("http://", HTTPAdapter())
    return http


def make_client(
    server: FakeTwilio,
    http: TwilioHttpClient,
    account_sid: str | None = None,
    auth_token: str | None = None,
) -> Client:
    client = Client(
        account_sid or server.account_sid, auth_token or server.auth_token, http_client=http
    )
    client.api.base_url = server.base_url
    return client


@pytest.fixture
def server() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def http() -> Iterator[TwilioHttpClient]:
    http = make_http()
    yield http
    http.session.close()


@pytest.fixture
def client(server: FakeTwilio, http: TwilioHttpClient) -> Client:
    return make_client(server, http)


def send(client: Client, to: str = TO, body: str = "Your appointment is confirmed.") -> str:
    return client.messages.create(to=to, from_=FROM, body=body).sid


def test_accepts_a_message_and_records_it(server: FakeTwilio, client: Client) -> None:
    message = client.messages.create(
        to=TO, from_=FROM, body="See you at 9:00", status_callback="https://x.test/cb"
    )

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert (message.to, message.from_, message.body) == (TO, FROM, "See you at 9:00")
    assert message.account_sid == server.account_sid
    assert message.num_segments == "1" and message.num_media == "0"
    assert message.direction == "outbound-api" and message.api_version == "2010-04-01"
    assert message.price is None and message.error_code is None and message.date_sent is None
    assert isinstance(message.date_created, datetime)
    assert message.uri == f"/2010-04-01/Accounts/{server.account_sid}/Messages/{message.sid}.json"
    [recorded] = server.requests
    assert recorded.index == 1 and recorded.sid == message.sid
    assert (recorded.to, recorded.from_, recorded.body) == (TO, FROM, "See you at 9:00")
    assert recorded.status_callback == "https://x.test/cb"
    assert recorded.response_status == 201 and recorded.accepted
    assert server.accepted == [recorded] and server.accepted_count() == 1


def test_messaging_service_without_from_is_accepted_not_queued(client: Client) -> None:
    message = client.messages.create(to=TO, messaging_service_sid="MG" + "1" * 32, body="Hi")

    assert message.status == "accepted"
    assert message.from_ is None and message.messaging_service_sid == "MG" + "1" * 32


@pytest.mark.parametrize(
    ("account_sid", "auth_token"),
    [(None, "wrong-token"), ("AC" + "f" * 32, None)],
    ids=["wrong-token", "wrong-account"],
)
def test_wrong_credentials_answer_401(
    server: FakeTwilio, http: TwilioHttpClient, account_sid: str | None, auth_token: str | None
) -> None:
    client = make_client(server, http, account_sid, auth_token)

    with pytest.raises(TwilioRestException) as caught:
        send(client)

    assert (caught.value.status, caught.value.code) == (401, 20003)
    [recorded] = server.requests
    assert recorded.response_status == 401 and recorded.sid is None
    assert server.accepted_count() == 0


def test_missing_body_is_21602(client: Client) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=TO, from_=FROM)

    assert (caught.value.status, caught.value.code) == (400, 21602)


def test_fail_number(server: FakeTwilio, client: Client) -> None:
    server.fail_number("+15005550001", 21211)

    with pytest.raises(TwilioRestException) as caught:
        send(client, to="+15005550001")
    send(client)

    assert (caught.value.status, caught.value.code) == (400, 21211)
    assert "+15005550001 is not a valid phone number" in caught.value.msg
    assert [r.response_status for r in server.requests] == [400, 201]
    assert server.requests[0].error_code == 21211


def test_fail_every_rotates_500_and_429(server: FakeTwilio, client: Client) -> None:
    server.fail_every(5)
    outcomes: list[tuple[int, int] | str] = []
    for n in range(1, 12):
        try:
            send(client, body=f"message {n}")
            outcomes.append("ok")
        except TwilioRestException as exc:
            outcomes.append((exc.status, exc.code))

    assert outcomes == ["ok"] * 4 + [(500, 20500)] + ["ok"] * 4 + [(429, 20429)] + ["ok"]
    assert server.accepted_count() == 9


def test_fail_next_then_back_to_normal(server: FakeTwilio, client: Client) -> None:
    server.fail_next(2, 429)

    for _ in range(2):
        with pytest.raises(TwilioRestException) as caught:
            send(client)
        assert (caught.value.status, caught.value.code) == (429, 20429)
    send(client)

    assert [r.response_status for r in server.requests] == [429, 429, 201]


def test_hang_next_times_out_the_client_yet_accepts(server: FakeTwilio) -> None:
    http = make_http(timeout=0.1)
    try:
        client = make_client(server, http)
        server.hang_next(1, 0.4)
        with pytest.raises(requests.exceptions.ReadTimeout):
            send(client)
        assert server.wait_for_requests(1, timeout=2)
        send(client)  # the next one is answered at once, on a fresh connection
    finally:
        http.session.close()

    first, second = server.requests
    assert first.accepted and first.sid is not None
    assert second.accepted
    assert server.duplicates() == {(TO, "Your appointment is confirmed."): 2}


def test_duplicates_counts_pairs_accepted_more_than_once(
    server: FakeTwilio, client: Client
) -> None:
    server.fail_number("+12105550999", 21610)
    for body in ["a", "a", "a", "b"]:
        send(client, body=body)
    send(client, to="+12105550124", body="a")
    for _ in range(2):  # refused twice: not a duplicate
        with pytest.raises(TwilioRestException):
            send(client, to="+12105550999", body="a")

    assert server.duplicates() == {(TO, "a"): 3}


def test_stats_and_reset_over_http(
    server: FakeTwilio, client: Client, http: TwilioHttpClient
) -> None:
    server.fail_every(3)
    for body in ["a", "a", "b", "c"]:
        try:
            send(client, body=body)
        except TwilioRestException:
            pass

    stats = http.session.get(f"{server.base_url}/_stats", timeout=5).json()
    assert {k: stats[k] for k in ("requests", "accepted", "duplicates", "by_status")} == {
        "requests": 4,
        "accepted": 3,
        "duplicates": 1,
        "by_status": {"201": 3, "500": 1},
    }

    assert http.session.post(f"{server.base_url}/_reset", timeout=5).status_code == 200
    assert server.requests == [] and server.stats()["requests"] == 0
    send(client)  # numbering restarts: request 1 is not a 3rd
    assert server.requests[0].index == 1 and server.requests[0].accepted


def test_keep_alive_reuses_one_connection(server: FakeTwilio, client: Client) -> None:
    sids = {send(client, body=f"n{n}") for n in range(5)}

    assert len(sids) == 5
    assert server.connections_opened == 1


def test_responder_overrides_and_delay_applies(server: FakeTwilio, client: Client) -> None:
    server.responder = lambda index, form: (
        twilio_error(21614, to=form["To"]) if index == 1 else None
    )
    server.delay = 0.05

    with pytest.raises(TwilioRestException) as caught:
        send(client)
    send(client)

    assert (caught.value.status, caught.value.code) == (400, 21614)
    assert [r.response_status for r in server.requests] == [400, 201]
    assert server.errors == []


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("x" * 160, 1),
        ("x" * 161, 2),
        ("x" * 306, 2),
        ("x" * 307, 3),
        ("€" * 80, 1),  # extension characters: two septets each
        ("€" * 81, 2),
        ("é" * 160, 1),  # in the GSM basic set
        ("ę" * 70, 1),  # not GSM: UCS-2
        ("ę" * 71, 2),
        ("😀" * 35, 1),  # two UTF-16 units each
    ],
)
def test_num_segments(body: str, segments: int) -> None:
    assert num_segments(body) == segments


def test_cli_prints_its_url_and_stops_on_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--fail-every", "2"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            with requests.Session() as session:
                stats = session.get(f"{base_url}/_stats", timeout=5).json()
            assert stats["requests"] == 0
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
