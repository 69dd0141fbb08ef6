"""Private database files, two servers side by side, Retry-After on API 429s, text templates
that cannot grow past what a text may be."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from scheduler.content import LANGUAGES, SMS_TEMPLATE_KEYS, default_text
from scheduler.extensions import db
from scheduler.sms.segments import segment_count
from scheduler.sms.texts import (
    TEXT_NAME_MAX,
    check_text_size,
    fill_template,
    longest_values,
)
from tests.conftest import make_app
from tests.factories import api_booking, make_slot

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_database_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    os.umask(0o022)  # the usual umask: world-readable unless we say otherwise
    app = make_app(f"sqlite:///{tmp_path / 'private.sqlite3'}")
    with app.app_context():
        db.create_all()
        make_slot()
        files = [
            tmp_path / name
            for name in ("private.sqlite3", "private.sqlite3-wal", "private.sqlite3-shm")
        ]
        assert all(path.exists() for path in files)
        assert {path.name: mode_of(path) for path in files} == {p.name: 0o600 for p in files}
        db.engine.dispose()


def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    make_app(f"sqlite:///{path}")
    assert mode_of(path) == 0o600


def gunicorn(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HOME": str(home), "PORT": str(port), "WEB_THREADS": "2"}
    env.pop("XDG_RUNTIME_DIR", None)
    env["DATABASE_URL"] = f"sqlite:///{home / f'db{port}.sqlite3'}"
    env["SECRET_KEY"] = "test"
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(url: str) -> int:
    for _ in range(300):
        try:
            return requests.get(url, timeout=30).status_code
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_servers_on_one_machine_do_not_share_a_control_socket(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    servers = [gunicorn(tmp_path, port) for port in ports]
    try:
        for port in ports:
            assert wait_for(f"http://127.0.0.1:{port}/healthz") == 200
        servers[0].terminate()
        servers[0].wait(timeout=30)
        assert wait_for(f"http://127.0.0.1:{ports[1]}/healthz") == 200
        assert not (tmp_path / ".gunicorn").exists()  # no control socket in ~/.gunicorn
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_BOOKING": "2 per minute",
        "RATELIMIT_HEADERS_ENABLED": False,
    }


def test_api_429s_say_when_to_try_again(client: FlaskClient) -> None:
    with time_machine.travel(NOW, tick=True):
        slot = make_slot()
        codes = [client.post("/api/v1/appointments", json=api_booking(slot.id)) for _ in range(3)]
    assert [r.status_code for r in codes] == [201, 201, 429]
    assert codes[2].get_json()["error"] == "too_many_requests"
    assert 1 <= int(codes[2].headers["Retry-After"]) <= 61


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("key", SMS_TEMPLATE_KEYS)
def test_every_default_text_fits_two_segments_with_the_longest_values(
    app: Flask, key: str, language: str
) -> None:
    with app.test_request_context():
        text = fill_template(key, default_text(key, language), longest_values(None, language))
        check_text_size(key, default_text(key, language), None, language)
    count = segment_count(text)
    assert (count.encoding, count.segments <= 2) == ("GSM-7", True), text
    assert "W" * TEXT_NAME_MAX in text or "{first_name}" not in default_text(key, language)
