"""Headers, escaping, error pages and the health check."""

from __future__ import annotations

import logging

import pytest
from starlette.routing import Route

from tests.web.conftest import TestClient, WebEnv


def test_pages_carry_strict_security_headers(web: WebEnv) -> None:
    web.add_list()
    for path in ("/subscribe/news", "/manage", "/confirm/bad.token", "/nope"):
        headers = web.client.get(path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


def test_the_operators_stylesheet_and_logo_are_allowed_and_used(web: WebEnv) -> None:
    client = web.other_app(
        {
            "web": {"css_url": "https://cdn.example.net/brand.css"},
            "newsletter": {"logo_url": "https://img.example.net/logo.png"},
        }
    )
    page = client.get("/manage")
    assert 'href="https://cdn.example.net/brand.css"' in page.text
    assert 'src="https://img.example.net/logo.png"' in page.text
    csp = page.headers["content-security-policy"]
    assert "https://cdn.example.net" in csp and "https://img.example.net" in csp


def test_list_names_and_form_values_are_escaped(web: WebEnv) -> None:
    web.add_list(name="<script>alert(1)</script>")
    page = web.client.get("/subscribe/news")
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;" in page.text
    answer = web.client.post("/subscribe/news", data={"email": '"><img src=x onerror=1>'})
    assert "<img src=x" not in answer.text


def test_static_stylesheet_has_visible_focus_styles(web: WebEnv) -> None:
    css = web.client.get("/static/style.css")
    assert css.status_code == 200 and ":focus-visible" in css.text


def test_unknown_page_and_wrong_method_are_translated_4xx(web: WebEnv) -> None:
    missing = web.client.get("/nope", headers={"Accept-Language": "es"})
    assert missing.status_code == 404 and "Página no encontrada" in missing.text
    assert web.client.delete("/manage").status_code == 405


def test_unexpected_errors_become_a_500_page_and_are_logged(
    web: WebEnv, caplog: pytest.LogCaptureFixture
) -> None:
    app = web.client.app

    async def broken(request):
        raise RuntimeError("boom")

    app.router.routes.insert(0, Route("/broken", broken))
    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR):
        answer = client.get("/broken", headers={"Accept-Language": "fr"})
    assert answer.status_code == 500
    assert "Un problème est survenu" in answer.text and "boom" not in answer.text
    assert any("boom" in str(r.exc_info) for r in caplog.records if r.exc_info)


def test_health_check_reports_the_database_and_outbox(web: WebEnv) -> None:
    answer = web.client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok" and answer.json()["database"] == "ok"


def test_health_check_says_503_when_the_database_is_gone(
        web: WebEnv, tmp_path, sqlite_template) -> None:
    import shutil

    from newsletter.db.engine import make_engine
    from newsletter.services import build_services
    from newsletter.web import create_app

    db = tmp_path / "gone" / "newsletter.db"
    db.parent.mkdir()
    shutil.copy(sqlite_template, db)
    engine = make_engine(f"sqlite:///{db}")
    services = build_services(web.settings, engine=engine)
    client = TestClient(create_app(services, outbox_worker=False))
    assert client.get("/healthz").status_code == 200
    engine.dispose()
    shutil.rmtree(db.parent)  # the database disappears while the app runs
    answer = client.get("/healthz")
    assert answer.status_code == 503 and answer.json()["database"] == "unreachable"


def test_a_500_page_carries_the_security_headers(web: WebEnv) -> None:
    from newsletter.services import build_services
    from newsletter.web import create_app

    async def broken_check(request, fields) -> bool:
        raise RuntimeError("boom")

    web.add_list()
    app = create_app(build_services(web.settings, engine=web.engine), checks=[broken_check])
    client = TestClient(app, raise_server_exceptions=False)
    answer = client.post("/subscribe/news", data={"email": "a@example.org"})
    assert answer.status_code == 500
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"


def test_a_slash_redirect_goes_to_base_url_whatever_the_host_header(web: WebEnv) -> None:
    answer = web.client.get("/manage/?lang=fr", headers={"Host": "evil.example.net"})
    assert answer.status_code == 307
    assert answer.headers["location"] == "https://news.example.org/manage?lang=fr"
    assert web.client.get("/nowhere/", headers={"Host": "evil.example.net"}).status_code == 404


def test_a_json_number_too_long_to_read_is_a_400(web: WebEnv) -> None:
    web.add_list()
    body = '{"email": "a@example.org", "name": ' + "9" * 5000 + "}"
    answer = web.client.post(
        "/subscribe/news", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and "too long" in answer.json()["error"]
    assert web.events() == []
