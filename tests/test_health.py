from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import make_app


def test_healthz_ok_when_the_database_answers(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_503_when_the_database_does_not() -> None:
    app = make_app("postgresql://postgres@127.0.0.1:9/nowhere?connect_timeout=2")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"


def test_unexpected_errors_are_a_friendly_500_without_a_trace(client: FlaskClient) -> None:
    app = client.application

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/boom")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "secret internals" not in html and "Traceback" not in html
    assert "Something went wrong on our side" in html
