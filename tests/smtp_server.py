"""A real SMTP server on 127.0.0.1 (aiosmtpd), for tests and benchmarks.

It keeps every message it accepts and can answer with an error on demand::

    with SmtpServer() as server:
        server.fail_next("RCPT", 421)     # the next RCPT TO is answered 421
        server.fail_next("DATA", 451)     # the next message is answered 451 after DATA
        server.drop_next_data()           # the next message: connection closed, no answer
        server.fail_address("nobody@example.com", 550)  # always, at RCPT
        ...
        [message] = server.messages       # parsed EmailMessage objects, with their envelope

From another process (a benchmark), run it in the foreground; it prints its port
on one line when ready, answers each message after ``--delay`` seconds (a relay's
latency), and on SIGTERM prints what it accepted and how many distinct Message-IDs::

    python tests/smtp_server.py --port 8025 --delay 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import re
import signal
import socket
import threading
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

ANSWERS = {
    421: "421 4.3.2 Service not available, closing channel",
    451: "451 4.3.0 Requested action aborted: local error in processing",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.1.1 Mailbox unavailable",
    554: "554 5.7.1 Message refused",
}


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message_id(self) -> str:
        found = re.search(rb"^Message-ID: *(\S+)", self.raw, re.MULTILINE | re.IGNORECASE)
        return found.group(1).decode() if found else ""

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class Recorder:
    """The handler: records messages, answers injected failures first."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.failures: dict[str, deque[int]] = {"RCPT": deque(), "DATA": deque()}
        self.failing_addresses: dict[str, int] = {}
        self.drops = 0
        self.attempts: list[tuple[str, int]] = []  # (step, answer code) of every RCPT and DATA

    def _injected(self, step: str) -> int | None:
        with self.lock:
            return self.failures[step].popleft() if self.failures[step] else None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        code = self._injected("RCPT") or self.failing_addresses.get(address.lower())
        with self.lock:
            self.attempts.append(("RCPT", code or 250))
        if code:
            return ANSWERS.get(code, f"{code} Refused")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            drop = self.drops > 0
            if drop:
                self.drops -= 1
        if drop:
            # Took the message, then the connection broke before the answer.
            self._keep(envelope)
            assert server.transport is not None
            server.transport.abort()
            return "250 OK"
        code = self._injected("DATA")
        with self.lock:
            self.attempts.append(("DATA", code or 250))
        if code:
            return ANSWERS.get(code, f"{code} Refused")
        self._keep(envelope)
        return "250 Message accepted for delivery"

    def _keep(self, envelope: Envelope) -> None:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        with self.lock:
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), raw))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SmtpServer:
    def __init__(self, port: int | None = None, delay: float = 0.0) -> None:
        self.recorder = Recorder(delay)
        self.port = port or free_port()
        self.controller = Controller(
            self.recorder, hostname="127.0.0.1", port=self.port, decode_data=False
        )

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop answering (an outage); the port is free for another server."""
        if self.controller.server is not None:
            self.controller.stop()

    @property
    def received(self) -> list[Received]:
        with self.recorder.lock:
            return list(self.recorder.received)

    @property
    def messages(self) -> list[EmailMessage]:
        return [received.message for received in self.received]

    def fail_next(self, step: str, code: int, times: int = 1) -> None:
        with self.recorder.lock:
            self.recorder.failures[step].extend([code] * times)

    def fail_address(self, address: str, code: int) -> None:
        self.recorder.failing_addresses[address.lower()] = code

    def drop_next_data(self) -> None:
        with self.recorder.lock:
            self.recorder.drops += 1

    def duplicates(self) -> dict[str, int]:
        """Message-IDs received more than once."""
        counts: dict[str, int] = {}
        for message in self.messages:
            key = str(message["Message-ID"])
            counts[key] = counts.get(key, 0) + 1
        return {key: count for key, count in counts.items() if count > 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SmtpServer(args.port or None, args.delay) as server:
        print(server.port, flush=True)
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
        ids = [received.message_id for received in server.received]
        print(f"received {len(ids)} distinct {len(set(ids))}", flush=True)


if __name__ == "__main__":
    main()
