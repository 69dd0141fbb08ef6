"""A fake Twilio Messages API on 127.0.0.1, stdlib only, for tests and benchmarks.

The application's real ``twilio`` client is pointed at it with
``client.api.base_url = server.base_url``, so requests and answers follow what
twilio-python 9 sends and parses: form-encoded ``POST
/2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP Basic auth, a 201
message resource on success and Twilio's error JSON otherwise.

In a test::

    with FakeTwilio() as server:
        server.fail_every(5)
        ...
        assert server.duplicates() == {}

Every accepted message is kept, and ``GET .../Messages.json`` lists them as Twilio
does: filtered by ``To``, ``From``, ``DateSent``, ``DateSent>`` (on or after) and
``DateSent<`` (on or before), each a GMT date ``YYYY-MM-DD`` or an instant
``YYYY-MM-DDThh:mm:ssZ``; the most recently sent first (messages still queued,
without a ``date_sent``, before them); ``PageSize`` (50, at most 1000) a page, with
``next_page_uri`` carrying a ``PageToken`` so that a page follows on where the last one
ended. A message is "sent" at once, or after ``queue_seconds``; until then it is
listed as queued, without a ``date_sent``, and no ``DateSent`` filter matches it.

From another process (a benchmark), run it in the foreground; it prints its base
URL on one line when ready and serves ``GET /_stats`` and ``POST /_reset``::

    python tests/twilio_server.py --port 8765 --delay 0.1 --fail-every 5

How a message request is answered, first match wins (one-shot controls set with
``fail_next``/``hang_next`` are consumed in arrival order by every authenticated
request, whatever answers it):

1. wrong Basic auth or AccountSid in the path: 401, code 20003;
2. ``responder(index, form)`` when it returns a response;
3. a pending ``hang_next``: wait, then answer as 5-6 would (never an injected failure);
   a pending ``drop_next``: close the connection without an answer, after taking the
   message or not;
4. a pending ``fail_next``;
5. ``fail_every(n)``: requests n, 2n, ... by arrival index;
6. missing To / From and MessagingServiceSid / Body, Body over 1600 characters: 400;
7. ``fail_number(to, code)``;
8. accepted: 201 and a queued message.

A list request fails while ``fail_lists(code)`` is set; otherwise it is answered.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import itertools
import json
import math
import re
import signal
import socket
import socketserver
import sys
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "test-auth-token"
API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

Responder = Callable[[int, dict[str, str]], tuple[int, dict[str, Any]] | None]

# Twilio error code -> (HTTP status, message template; {to}, {path}, {param} are filled in).
TWILIO_ERRORS: dict[int, tuple[int, str]] = {
    20001: (400, "Invalid value for {param}"),
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number {to} is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
# HTTP statuses accepted wherever a Twilio code is, and the code they stand for.
STATUS_CODES: dict[int, int] = {401: 20003, 404: 20404, 429: 20429, 500: 20500}

_MESSAGES_PATH = re.compile(rf"^/{API_VERSION}/Accounts/([^/]+)/Messages\.json$")

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")  # two septets each (escape + char)


def resolve_code(status_or_code: int) -> int:
    """The Twilio error code for a Twilio code or an HTTP status (500, 429, 401, 404)."""
    if status_or_code in TWILIO_ERRORS:
        return status_or_code
    if status_or_code in STATUS_CODES:
        return STATUS_CODES[status_or_code]
    known = sorted(TWILIO_ERRORS) + sorted(STATUS_CODES)
    raise ValueError(f"unknown Twilio error code or HTTP status {status_or_code}; known: {known}")


def twilio_error(
    status_or_code: int, *, to: str | None = None, path: str = "", param: str = ""
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, Twilio error JSON) for a code or status, e.g. for a ``responder``."""
    code = resolve_code(status_or_code)
    status, template = TWILIO_ERRORS[code]
    return status, {
        "code": code,
        "message": template.format(to=to or "", path=path, param=param),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def num_segments(body: str) -> int:
    """SMS segments, roughly as Twilio counts: GSM-7 160 / 153 per part, else UCS-2 70 / 67."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in body):
        units = sum(2 if ch in _GSM_EXTENDED else 1 for ch in body)
        single, part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2  # astral characters take two
        single, part = 70, 67
    if units <= single:
        return 1
    return math.ceil(units / part)


@dataclass(frozen=True)
class RecordedRequest:
    """One message request as the server saw and answered it; sid is None unless accepted."""

    index: int
    received_at: datetime
    to: str | None
    from_: str | None
    messaging_service_sid: str | None
    body: str | None
    status_callback: str | None
    response_status: int
    sid: str | None
    error_code: int | None = None
    dropped: bool = False  # the connection was closed without an answer

    @property
    def accepted(self) -> bool:
        """The provider took the message (even if the client never heard so)."""
        return 200 <= self.response_status < 300


@dataclass(frozen=True)
class ListRequest:
    """One request for the Messages list: its query and the HTTP status of the answer."""

    received_at: datetime
    query: dict[str, str]
    response_status: int
    listed: int  # messages on the page answered


@dataclass(frozen=True)
class _StoredMessage:
    """An accepted message, as the list shows it."""

    number: int  # creation order
    resource: dict[str, Any]  # the 201 answer
    created_at: datetime
    sent_at: datetime  # when it leaves the queue

    def view(self, now: datetime) -> tuple[datetime | None, dict[str, Any]]:
        """(date_sent, the resource as listed at ``now``)."""
        if now < self.sent_at:
            return None, self.resource
        sent = format_datetime(self.sent_at)
        return self.sent_at, self.resource | {
            "status": "sent",
            "date_sent": sent,
            "date_updated": sent,
        }


@dataclass(frozen=True)
class _Action:
    kind: str  # "fail", "hang" or "drop"
    code: int = 0
    seconds: float = 0.0
    accept: bool = False  # "drop": take the message before closing the connection


_DROPPED = 0  # the status of an answer never sent: the handler closes the connection


class FakeTwilio:
    """A Twilio-compatible Messages endpoint in a background thread.

    Every behaviour control can be changed while the server runs, from any thread.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
    ) -> None:
        self.host = host
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._requested_port = port
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._delay = float(delay)
        self._responder: Responder | None = None
        self._fail_every = 0
        self._fail_statuses: tuple[int, ...] = ()
        self._fail_numbers: dict[str, int] = {}
        self._pending: deque[_Action] = deque()
        self._recorded: list[RecordedRequest] = []
        self._messages: list[_StoredMessage] = []
        self._list_requests: list[ListRequest] = []
        self._list_failure: int | None = None
        self._queue_seconds = 0.0
        # The server's clock: the test's (time-machine travels this thread too), or the wall
        # clock where dispatchers run in subprocesses, which keep the real one.
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._errors: list[BaseException] = []
        self._arrivals = 0
        self._generation = 0
        self._in_flight = 0
        self._connections_opened = 0
        self._open_connections: dict[socket.socket, threading.Thread] = {}
        self._httpd: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        if self._httpd is not None:
            raise RuntimeError("FakeTwilio is already running")
        self._stopping = threading.Event()
        self._httpd = _Server((self.host, self._requested_port), self)
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits up to one poll interval
            name=f"FakeTwilio:{self.port}",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes delayed or hanging requests and drops keep-alive connections."""
        httpd, thread = self._httpd, self._serve_thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        thread.join()
        with self._lock:
            connections = dict(self._open_connections)
        for conn in connections:
            _shutdown_socket(conn)
        for handler_thread in connections.values():
            handler_thread.join(timeout=5)
        httpd.server_close()
        self._httpd = None
        self._serve_thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeTwilio is not running")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- behaviour controls ----------------------------------------------------------------

    @property
    def delay(self) -> float:
        """Seconds every message request waits before it is answered."""
        with self._lock:
            return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        with self._lock:
            self._delay = float(seconds)

    @property
    def responder(self) -> Responder | None:
        """``(index, form) -> (status, json) | None``; None falls through to the default."""
        with self._lock:
            return self._responder

    @responder.setter
    def responder(self, responder: Responder | None) -> None:
        with self._lock:
            self._responder = responder

    def fail_every(self, n: int, statuses: Sequence[int] = (500, 429)) -> None:
        """Requests n, 2n, 3n, ... fail with statuses[0], statuses[1], ... in turn; 0 is off."""
        if n < 0:
            raise ValueError("n must be >= 0")
        codes = tuple(resolve_code(s) for s in statuses)
        if n and not codes:
            raise ValueError("statuses must not be empty")
        with self._lock:
            self._fail_every, self._fail_statuses = n, codes

    def fail_number(self, to: str, code: int | None) -> None:
        """Every request to ``to`` fails with this Twilio code (or HTTP status); None clears."""
        with self._lock:
            if code is None:
                self._fail_numbers.pop(to, None)
            else:
                self._fail_numbers[to] = resolve_code(code)

    def fail_next(self, count: int, status_or_code: int) -> None:
        """The next ``count`` requests (after any already pending one-shots) fail this way."""
        action = _Action("fail", code=resolve_code(status_or_code))
        with self._lock:
            self._pending.extend(itertools.repeat(action, count))

    def hang_next(self, count: int, seconds: float) -> None:
        """The next ``count`` requests wait ``seconds``, then are accepted.

        Simulates a client read timeout on a text Twilio did send.
        """
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        action = _Action("hang", seconds=float(seconds))
        with self._lock:
            self._pending.extend(itertools.repeat(action, count))

    def drop_next(self, count: int, *, accept: bool) -> None:
        """The next ``count`` requests get no answer: the connection is closed.

        With ``accept`` the message is taken first (a connection lost after Twilio
        sent the text), else not (lost before it got there).
        """
        action = _Action("drop", accept=accept)
        with self._lock:
            self._pending.extend(itertools.repeat(action, count))

    def fail_lists(self, status_or_code: int | None) -> None:
        """Every Messages list request fails this way until called with None."""
        code = None if status_or_code is None else resolve_code(status_or_code)
        with self._lock:
            self._list_failure = code

    @property
    def queue_seconds(self) -> float:
        """Seconds an accepted message stays queued (no ``date_sent``) before it is sent."""
        with self._lock:
            return self._queue_seconds

    @queue_seconds.setter
    def queue_seconds(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("queue_seconds must be >= 0")
        with self._lock:
            self._queue_seconds = float(seconds)

    def clear_faults(self) -> None:
        """Turn off fail_every, fail_number, pending one-shots, list failures, the responder."""
        with self._lock:
            self._fail_every, self._fail_statuses = 0, ()
            self._fail_numbers.clear()
            self._pending.clear()
            self._list_failure = None
            self._responder = None

    # -- what was seen -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Answered message requests, by arrival index (a copy)."""
        with self._lock:
            return sorted(self._recorded, key=lambda r: r.index)

    @property
    def accepted(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.accepted]

    def accepted_count(self) -> int:
        with self._lock:
            return sum(1 for r in self._recorded if r.accepted)

    def duplicates(self) -> dict[tuple[str | None, str | None], int]:
        """(to, body) -> times accepted, for pairs accepted more than once."""
        with self._lock:
            counts = Counter((r.to, r.body) for r in self._recorded if r.accepted)
        return {pair: n for pair, n in counts.items() if n > 1}

    @property
    def list_requests(self) -> list[ListRequest]:
        """Messages list requests, in arrival order (a copy)."""
        with self._lock:
            return list(self._list_requests)

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised by the responder (each answered as a 500)."""
        with self._lock:
            return list(self._errors)

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start or reset (1 for a kept-alive client)."""
        with self._lock:
            return self._connections_opened

    def stats(self) -> dict[str, Any]:
        """What ``GET /_stats`` answers."""
        with self._lock:
            recorded = list(self._recorded)
            in_flight, connections = self._in_flight, self._connections_opened
            lists = Counter(str(r.response_status) for r in self._list_requests)
        by_status = Counter(str(r.response_status) for r in recorded)
        pairs = Counter((r.to, r.body) for r in recorded if r.accepted)
        return {
            "requests": len(recorded),
            "accepted": sum(pairs.values()),
            "distinct_accepted": len(pairs),
            "duplicates": sum(1 for n in pairs.values() if n > 1),
            "by_status": dict(sorted(by_status.items())),
            "dropped": sum(1 for r in recorded if r.dropped),
            "list_requests": dict(sorted(lists.items())),
            "in_flight": in_flight,
            "connections": connections,
        }

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` requests have been answered; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._recorded) >= count, timeout)

    def reset(self) -> None:
        """Forget requests, messages, errors and pending one-shots; numbering restarts at 1.

        Configured behaviour (delay, fail_every, fail_number, fail_lists, queue_seconds,
        responder) stays. Requests still in flight are not recorded.
        """
        with self._lock:
            self._recorded.clear()
            self._messages.clear()
            self._list_requests.clear()
            self._errors.clear()
            self._pending.clear()
            self._arrivals = 0
            self._connections_opened = 0
            self._generation += 1
            self._changed.notify_all()

    # -- request handling (called from handler threads) ------------------------------------

    def _handle_message(
        self, path_sid: str, form: dict[str, str], authorization: str | None, path: str
    ) -> tuple[int, dict[str, Any]]:
        received_at = self.now()
        authorized = self._authorized(path_sid, authorization)
        to = form.get("To") or None
        with self._lock:
            self._arrivals += 1
            index, generation = self._arrivals, self._generation
            self._in_flight += 1
            delay, responder = self._delay, self._responder
            action = self._pending.popleft() if authorized and self._pending else None
            every_code = None
            if authorized and self._fail_every and index % self._fail_every == 0:
                turn = (index // self._fail_every - 1) % len(self._fail_statuses)
                every_code = self._fail_statuses[turn]
            number_code = self._fail_numbers.get(to) if to else None
        try:
            self._sleep(delay)
            status, payload = self._decide(
                index, form, path, authorized, responder, action, every_code, number_code
            )
        finally:
            with self._lock:
                self._in_flight -= 1
        dropped = status == _DROPPED
        if dropped and payload:  # taken, then the connection is closed
            status = 201
        accepted = 200 <= status < 300
        record = RecordedRequest(
            index=index,
            received_at=received_at,
            to=to,
            from_=form.get("From") or None,
            messaging_service_sid=form.get("MessagingServiceSid") or None,
            body=form.get("Body"),
            status_callback=form.get("StatusCallback") or None,
            response_status=status,
            sid=payload.get("sid") if accepted else None,
            error_code=None if accepted else payload.get("code"),
            dropped=dropped,
        )
        with self._lock:
            if generation == self._generation:
                self._recorded.append(record)
                if accepted and payload.get("sid"):
                    created = self.now()
                    self._messages.append(
                        _StoredMessage(
                            number=len(self._messages),
                            resource=payload,
                            created_at=created,
                            sent_at=created + timedelta(seconds=self._queue_seconds),
                        )
                    )
                self._changed.notify_all()
        return (_DROPPED, {}) if dropped else (status, payload)

    def _decide(
        self,
        index: int,
        form: dict[str, str],
        path: str,
        authorized: bool,
        responder: Responder | None,
        action: _Action | None,
        every_code: int | None,
        number_code: int | None,
    ) -> tuple[int, dict[str, Any]]:
        to = form.get("To") or None
        if not authorized:
            return twilio_error(20003)
        if responder is not None:
            try:
                response = responder(index, dict(form))
            except Exception as exc:  # answered as Twilio would on a fault; kept for the test
                with self._lock:
                    self._errors.append(exc)
                return twilio_error(20500)
            if response is not None:
                return response
        if action is not None and action.kind == "hang":
            self._sleep(action.seconds)
            invalid = _invalid_code(form)
            return twilio_error(invalid, to=to) if invalid else self._accept(form)
        if action is not None and action.kind == "drop":
            if action.accept and not _invalid_code(form):
                return _DROPPED, self._accept(form)[1]
            return _DROPPED, {}
        if action is not None:
            return twilio_error(action.code, to=to, path=path)
        if every_code is not None:
            return twilio_error(every_code, to=to, path=path)
        invalid = _invalid_code(form)
        if invalid:
            return twilio_error(invalid, to=to)
        if number_code is not None:
            return twilio_error(number_code, to=to, path=path)
        return self._accept(form)

    def _accept(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(self.now())
        from_ = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return 201, {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": form["Body"],
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(num_segments(form["Body"])),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # Twilio answers "accepted" when a Messaging Service still has to pick the sender.
            "status": "queued" if from_ else "accepted",
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": form["To"],
            "uri": f"{uri}.json",
        }

    def _handle_list(
        self, path_sid: str, query: dict[str, str], authorization: str | None, path: str
    ) -> tuple[int, dict[str, Any]]:
        now = self.now()
        status, payload = self._list_page(path_sid, query, authorization, path, now)
        with self._lock:
            self._list_requests.append(
                ListRequest(now, dict(query), status, len(payload.get("messages", ())))
            )
        return status, payload

    def _list_page(
        self,
        path_sid: str,
        query: dict[str, str],
        authorization: str | None,
        path: str,
        now: datetime,
    ) -> tuple[int, dict[str, Any]]:
        if not self._authorized(path_sid, authorization):
            return twilio_error(20003)
        with self._lock:
            failure = self._list_failure
            stored = list(self._messages)
        self._sleep(self.delay)
        if failure is not None:
            return twilio_error(failure, path=path)
        try:
            bounds = [
                (name, _parse_date_filter(query[name]))
                for name in ("DateSent", "DateSent>", "DateSent<")
                if query.get(name)
            ]
            size = int(query.get("PageSize") or DEFAULT_PAGE_SIZE)
            page = int(query.get("Page") or 0)
            if not 1 <= size <= MAX_PAGE_SIZE or page < 0:
                raise ValueError
        except ValueError:
            bad = next(
                (
                    name
                    for name in ("DateSent", "DateSent>", "DateSent<", "PageSize", "Page")
                    if not _valid_param(name, query.get(name))
                ),
                "PageSize",
            )
            return twilio_error(20001, param=bad)
        listed: list[tuple[datetime | None, int, dict[str, Any]]] = []
        for message in stored:
            sent, resource = message.view(now)
            if _passes_filters(sent, resource, query, bounds):
                listed.append((sent, message.number, resource))
        # Most recently sent first; still queued (no date_sent yet) before them.
        listed.sort(key=lambda m: (m[0] is not None, -(m[0] or now).timestamp(), -m[1]))
        start = page * size
        token = query.get("PageToken", "")
        if token.startswith("PA"):
            after = next((i for i, m in enumerate(listed) if m[2]["sid"] == token[2:]), None)
            if after is not None:
                start = after + 1
        chunk = listed[start : start + size]
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        filters = {k: v for k, v in query.items() if k in ("To", "From") or k.startswith("Date")}

        def uri(page_number: int, token: str | None = None) -> str:
            params = filters | {"PageSize": str(size), "Page": str(page_number)}
            if token:
                params["PageToken"] = token
            return f"{base}?{urlencode(params)}"

        more = start + size < len(listed)
        return 200, {
            "end": start + max(len(chunk) - 1, 0),
            "first_page_uri": uri(0),
            "messages": [resource for _, _, resource in chunk],
            "next_page_uri": uri(page + 1, "PA" + chunk[-1][2]["sid"]) if more else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
            "start": start,
            "uri": uri(page, token or None),
        }

    def _authorized(self, path_sid: str, authorization: str | None) -> bool:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        return (
            hmac.compare_digest(user.encode(), self.account_sid.encode())
            and hmac.compare_digest(password.encode(), self.auth_token.encode())
            and path_sid == self.account_sid
        )

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)  # stop() cuts it short

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections_opened += 1
            self._open_connections[conn] = threading.current_thread()
            stopping = self._stopping.is_set()
        if stopping:  # accepted while stop() was collecting connections
            _shutdown_socket(conn)

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._open_connections.pop(conn, None)


def _parse_date_filter(text: str) -> datetime | date:
    """A GMT date (``YYYY-MM-DD``) or instant (``YYYY-MM-DDThh:mm:ssZ``), as Twilio takes them."""
    if len(text) == 10:
        return date.fromisoformat(text)
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(text)
    return instant.astimezone(UTC)


def _valid_param(name: str, value: str | None) -> bool:
    if not value:
        return True
    try:
        if name.startswith("DateSent"):
            _parse_date_filter(value)
        else:
            number = int(value)
            return number >= 0 if name == "Page" else 1 <= number <= MAX_PAGE_SIZE
    except ValueError:
        return False
    return True


def _passes_filters(
    sent: datetime | None,
    resource: dict[str, Any],
    query: dict[str, str],
    bounds: list[tuple[str, datetime | date]],
) -> bool:
    """Whether a message is listed under the query's To, From and DateSent filters."""
    if query.get("To") and resource["to"] != query["To"]:
        return False
    if query.get("From") and resource["from"] != query["From"]:
        return False
    return not bounds or (sent is not None and all(_within(sent, b) for b in bounds))


def _within(sent: datetime, bound: tuple[str, datetime | date]) -> bool:
    """Whether ``sent`` passes one filter; a date compares whole GMT days."""
    name, limit = bound
    value: datetime | date = sent
    if not isinstance(limit, datetime):
        value = sent.astimezone(UTC).date()
    if name == "DateSent>":
        return value >= limit
    if name == "DateSent<":
        return value <= limit
    return value == limit


def _invalid_code(form: dict[str, str]) -> int | None:
    if not form.get("To"):
        return 21604
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return 21603
    body = form.get("Body")
    if not body:
        return 21602
    if len(body) > MAX_BODY_CHARS:
        return 21617
    return None


def _shutdown_socket(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the client


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # a pool of 32 opens 32 connections at once
    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeTwilio) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can be slow.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (read timeout) or stop() cut the connection
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    disable_nagle_algorithm = True  # else headers + body in two writes meet delayed ACKs: 40 ms
    server: _Server

    def version_string(self) -> str:
        return "FakeTwilio/1.0"

    def setup(self) -> None:
        super().setup()
        self.server.fake._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self._read_body() is None:
            return
        parts = urlsplit(self.path)
        path = parts.path
        if path == "/_stats":
            self._send_json(200, self.server.fake.stats())
            return
        match = _MESSAGES_PATH.match(path)
        if match is None:
            self._send_json(*twilio_error(20404, path=path))
            return
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        status, payload = self.server.fake._handle_list(
            match.group(1), query, self.headers.get("Authorization"), path
        )
        extra = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else {}
        self._send_json(status, payload, extra)

    def do_POST(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        path = urlsplit(self.path).path
        fake = self.server.fake
        if path == "/_reset":
            fake.reset()
            self._send_json(200, {"reset": True})
            return
        match = _MESSAGES_PATH.match(path)
        if match is None:
            self._send_json(*twilio_error(20404, path=path))
            return
        parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        form = {key: values[0] for key, values in parsed.items()}
        status, payload = fake._handle_message(
            match.group(1), form, self.headers.get("Authorization"), path
        )
        if status == _DROPPED:
            self.close_connection = True
            _shutdown_socket(self.connection)
            return
        extra = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else {}
        self._send_json(status, payload, extra)

    def _read_body(self) -> bytes | None:
        """Read the whole body, so the next request on a kept-alive connection starts clean."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send_json(400, {"message": "bad Content-Length", "status": 400})
            return None
        return self.rfile.read(length) if length else b""

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Twilio-Request-Id", "RQ" + uuid.uuid4().hex)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fake Twilio Messages API; prints its base URL when ready."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--fail-every", type=int, default=0, metavar="N")
    parser.add_argument(
        "--fail-statuses",
        default="500,429",
        help="comma-separated HTTP statuses or Twilio codes used in turn by --fail-every",
    )
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = FakeTwilio(
        host=args.host,
        port=args.port,
        delay=args.delay,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
    )
    if args.fail_every:
        statuses = [int(s) for s in args.fail_statuses.split(",") if s.strip()]
        server.fail_every(args.fail_every, statuses)
    with server:
        print(server.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
