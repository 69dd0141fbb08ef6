from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from scheduler import create_app
from scheduler.config import (
    DEFAULTS,
    instance_secret_key,
    parse_env_value,
    settings_from_env,
)


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        ("false", True, False),
        ("true", False, True),
        ("15", 120, 15),
        ("0.5", 1.0, 0.5),
        ("postgresql://u@h/db", None, "postgresql://u@h/db"),
        ("10 per minute", "5 per minute", "10 per minute"),
        ("123", "text", "123"),
    ],
)
def test_environment_values_take_the_type_of_the_default(
    raw: str, default: object, expected: object
) -> None:
    assert parse_env_value(raw, default) == expected


def test_only_known_settings_are_read_from_the_environment() -> None:
    env = {"RATELIMIT_ENABLED": "false", "MIN_NOTICE_MINUTES": "30", "PATH": "/bin"}
    assert settings_from_env(env) == {"RATELIMIT_ENABLED": False, "MIN_NOTICE_MINUTES": 30}


def test_every_default_is_documented_and_sane() -> None:
    assert DEFAULTS["MIN_NOTICE_MINUTES"] == 120
    assert DEFAULTS["BOOKING_HORIZON_DAYS"] == 90
    assert DEFAULTS["RATELIMIT_BOOKING"] == "5 per minute;30 per hour"
    assert DEFAULTS["PUBLIC_BASE_URL"] == "http://127.0.0.1:5000"
    assert DEFAULTS["SECRET_KEY"] is None


def test_environment_overrides_instance_config_and_the_test_mapping_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIN_NOTICE_MINUTES", "45")
    monkeypatch.setenv("RATELIMIT_ENABLED", "false")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/none")
    app = create_app({"SECRET_KEY": "x", "BOOKING_HORIZON_DAYS": 30})
    assert app.config["MIN_NOTICE_MINUTES"] == 45
    assert app.config["RATELIMIT_ENABLED"] is False
    assert app.config["BOOKING_HORIZON_DAYS"] == 30
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql://postgres@127.0.0.1/none"
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is False


def test_default_database_is_sqlite_in_the_instance_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app({"SECRET_KEY": "x"})
    assert app.config["DATABASE_URL"] == "sqlite:///" + os.path.join(
        app.instance_path, "scheduler.sqlite3"
    )


def test_secret_key_is_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    first = instance_secret_key(str(tmp_path))
    second = instance_secret_key(str(tmp_path))
    assert first == second and len(first) >= 40
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600


def test_secret_key_is_never_a_constant_in_the_code() -> None:
    source = Path(__file__).parents[1] / "scheduler"
    for path in source.rglob("*.py"):
        text = path.read_text()
        assert 'SECRET_KEY = "' not in text and 'SECRET_KEY="' not in text, path


def test_https_base_url_makes_cookies_secure() -> None:
    app = create_app({"SECRET_KEY": "x", "PUBLIC_BASE_URL": "https://book.example.org"})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
