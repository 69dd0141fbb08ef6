from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from scheduler.sms.backends import ConsoleBackend
from scheduler.sms.dispatch import Dispatcher
from tests.smtp_server import SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """The suite's own SMTP server (aiosmtpd) on 127.0.0.1."""
    with SmtpServer() as server:
        yield server


def smtp_settings(server: SmtpServer, **overrides: Any) -> dict[str, Any]:
    return {
        "MAIL_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": server.port,
        "SMTP_SECURITY": "none",
        "SMTP_TIMEOUT_SECONDS": 5.0,
        "MAIL_FROM": "Freedom Spine & Pain Center <appointments@clinic.example.test>",
        "SMS_SEND_CONCURRENCY": 4,
        **overrides,
    }


@pytest.fixture
def app_config(smtp: SmtpServer) -> dict[str, Any]:
    return smtp_settings(smtp)


@pytest.fixture
def texts_printed() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def dispatcher(app: Flask, texts_printed: io.StringIO) -> Iterator[Dispatcher]:
    """Texts to the console (kept), emails to the suite's SMTP server."""
    with Dispatcher(app, backend=ConsoleBackend(texts_printed)) as dispatcher:
        yield dispatcher
