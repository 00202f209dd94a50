"""What `newsletter send` reports before and instead of sending."""

from __future__ import annotations

from tests.delivery.sender_fixtures import configure, seed, write_issue


def test_plain_http_base_url_is_warned_about_because_one_click_needs_https(
        run, workspace, db_url, smtp_server, monkeypatch):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"])
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "http://news.example.org")
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 1
    assert any("base_url is not https" in w for w in result["warnings"])
    seed(workspace, ["fr"], start=50)
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://news.example.org")
    again = run.json("send", "nov", "--yes", "--force")
    assert again["sent"] == 1
    assert not any("base_url" in w for w in again["warnings"])


def test_json_says_so_when_there_is_nothing_left_to_send(run, workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"])
    run.json("send", "nov", "--yes")
    again = run.json("send", "nov", "--yes", "--force")
    assert again["status"] == "nothing to send" and again["sent"] == 0
    assert len(smtp_server.messages) == 1


def test_a_send_compiles_each_language_once_for_its_checks_and_its_messages(
        run, workspace, db_url, smtp_server, monkeypatch):
    """Compiling is most of a small send's own work: the pre-send checks judge the editions
    the send mails, not copies compiled a second time."""
    from newsletter.compose import checks, compiler

    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en", "fr", "es"])
    compiled: list[str] = []
    real = compiler.compile_issue

    def counted(source, language, settings, **kw):
        compiled.append(language)
        return real(source, language, settings, **kw)

    monkeypatch.setattr(compiler, "compile_issue", counted)
    monkeypatch.setattr(checks, "compile_issue", counted)
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 3
    assert sorted(compiled) == sorted(set(compiled)) == ["en", "es", "fr"]
