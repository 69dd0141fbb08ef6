"""The fake Twilio server, driven by the real twilio-python client: no Flask, no database."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import time_machine
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from tests.twilio_server import FakeTwilio, num_segments, twilio_error

FROM = "+18305550100"
TO = "+12105550123"
SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "twilio_server.py"
T0 = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


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


def test_lists_messages_to_a_number_newest_first_in_pages(
    server: FakeTwilio, client: Client
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        for n in range(5):
            send(client, body=f"to TO {n}")
            send(client, to="+12105550124", body=f"elsewhere {n}")
            clock.shift(timedelta(minutes=1))
        listed = client.messages.list(to=TO, page_size=2)

    assert [m.body for m in listed] == [f"to TO {n}" for n in (4, 3, 2, 1, 0)]
    assert {m.status for m in listed} == {"sent"}
    assert listed[0].date_sent == T0 + timedelta(minutes=4)
    pages = server.list_requests
    assert [r.listed for r in pages] == [2, 2, 1]
    assert [r.query.get("Page") for r in pages] == [None, "1", "2"]
    assert all(r.query["To"] == TO and r.query["PageToken"].startswith("PASM") for r in pages[1:])


def test_the_next_page_follows_on_where_the_last_ended_as_messages_arrive(
    server: FakeTwilio, client: Client
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        for n in range(3):
            send(client, body=f"old {n}")
            clock.shift(timedelta(seconds=10))
        first = client.messages.page(to=TO, page_size=2)
        send(client, body="new")  # now first in the list: pages must not shift
        second = first.next_page()

    assert [m.body for m in first] == ["old 2", "old 1"]
    assert second is not None
    assert [m.body for m in second] == ["old 0"]
    assert second.next_page_url is None


def test_date_sent_filters_take_instants_and_whole_days(
    server: FakeTwilio, client: Client, http: TwilioHttpClient
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        for minutes in (0, 5, 10, 8 * 60 + 30):  # the last one on the next GMT day
            clock.move_to(T0 + timedelta(minutes=minutes))
            send(client, body=f"at +{minutes} min")
        around = client.messages.list(
            to=TO,
            date_sent_after=T0 + timedelta(minutes=4),
            date_sent_before=T0 + timedelta(minutes=6),
        )
        url = f"{server.base_url}/2010-04-01/Accounts/{server.account_sid}/Messages.json"
        auth = (server.account_sid, server.auth_token)

        def bodies(params: dict[str, str]) -> list[str]:
            answer = http.session.get(url, params=params, auth=auth, timeout=5)
            assert answer.status_code == 200
            return [m["body"] for m in answer.json()["messages"]]

        on_the_day = bodies({"DateSent": "2026-12-01"})
        from_next_day = bodies({"DateSent>": "2026-12-02"})
        up_to_the_day = bodies({"DateSent<": "2026-12-01", "To": TO})
        bad = http.session.get(url, params={"DateSent>": "yesterday"}, auth=auth, timeout=5)

    assert [m.body for m in around] == ["at +5 min"]
    assert on_the_day == ["at +10 min", "at +5 min", "at +0 min"]
    assert from_next_day == ["at +510 min"]
    assert up_to_the_day == on_the_day
    assert bad.status_code == 400 and bad.json()["code"] == 20001
    assert "DateSent>" in bad.json()["message"]


def test_a_queued_message_has_no_date_sent_so_no_date_filter_finds_it(
    server: FakeTwilio, client: Client
) -> None:
    server.queue_seconds = 60
    with time_machine.travel(T0, tick=False) as clock:
        send(client, body="earlier")
        clock.shift(timedelta(seconds=61))
        send(client, body="still queued")
        queued = client.messages.list(to=TO)
        dated = client.messages.list(to=TO, date_sent_after=T0 - timedelta(minutes=5))
        clock.shift(timedelta(seconds=60))
        later = client.messages.list(to=TO, date_sent_after=T0 - timedelta(minutes=5))

    assert [(m.body, m.status, m.date_sent) for m in queued] == [
        ("still queued", "queued", None),
        ("earlier", "sent", T0 + timedelta(seconds=60)),
    ]
    assert [m.body for m in dated] == ["earlier"]
    assert [m.body for m in later] == ["still queued", "earlier"]


def test_a_failing_list_raises_in_the_client_and_wrong_credentials_get_401(
    server: FakeTwilio, client: Client, http: TwilioHttpClient
) -> None:
    server.fail_lists(500)
    with pytest.raises(TwilioException) as failed:
        client.messages.list(to=TO)
    server.fail_lists(None)
    assert client.messages.list(to=TO) == []
    stranger = make_client(server, http, auth_token="wrong-token")
    with pytest.raises(TwilioException):
        stranger.messages.list(to=TO)

    assert "500" in str(failed.value)
    assert [r.response_status for r in server.list_requests] == [500, 200, 401]


@pytest.mark.parametrize("accept", [True, False])
def test_drop_next_closes_the_connection_after_taking_the_message_or_not(
    server: FakeTwilio, client: Client, accept: bool
) -> None:
    server.drop_next(1, accept=accept)
    with pytest.raises(requests.exceptions.ConnectionError):
        send(client, body="lost answer")
    send(client, body="next")  # a fresh connection

    [dropped, answered] = server.requests
    assert (dropped.dropped, dropped.accepted, answered.accepted) == (True, accept, True)
    listed = [m.body for m in client.messages.list(to=TO)]
    assert listed == (["next", "lost answer"] if accept else ["next"])


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
