"""lists update, rename, delete and sync, driven as a user would; output never cut when piped."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from newsletter.db.models import Issue, MailingList, Suppression
from tests.conftest import Cli

LONG_NAME = "Coalition News for Climate Justice and Fair Trade Across Three Continents"


def make_list(run: Cli, slug: str = "news") -> None:
    run("lists", "add", slug, "--name", "Coalition News", "--languages", "en,fr,es",
        "--default-language", "en")


def add(run: Cli, email: str, language: str, slug: str = "news") -> None:
    run("subscribers", "add", email, "--list", slug, "--language", language)


def test_update_changes_name_description_and_languages(run):
    make_list(run)
    out = run("lists", "update", "news", "--name", "Coalition Bulletin", "--description",
              "Monthly", "--languages", "en,fr,es,pt").output
    assert "news: name 'Coalition News' -> 'Coalition Bulletin'" in out
    assert "languages 'en,fr,es' -> 'en,fr,es,pt'" in out
    show = run.json("lists", "show", "news")
    assert show["name"] == "Coalition Bulletin" and show["languages"] == ["en", "fr", "es", "pt"]
    run("lists", "update", "news", "--default-language", "fr")
    assert run.json("lists", "show", "news")["default_language"] == "fr"
    assert "nothing to change" in run("lists", "update", "news", "--name",
                                      "Coalition Bulletin").output


def test_removing_a_language_subscribers_read_is_refused_with_their_count(run):
    make_list(run)
    add(run, "a@example.org", "es")
    add(run, "b@example.org", "es")
    add(run, "c@example.org", "fr")
    result = run("lists", "update", "news", "--languages", "en,fr", ok=False)
    assert result.exit_code == 1
    assert "2 subscriber(s) read es" in result.output and "--force" in result.output
    assert result.output.count("\n") == 1
    assert run.json("lists", "show", "news")["languages"] == ["en", "fr", "es"]
    bad = run("lists", "update", "news", "--default-language", "de", ok=False)
    assert "not among the list's languages" in bad.output
    run("lists", "update", "news", "--languages", "en,fr", "--force")
    assert run.json("lists", "show", "news")["languages"] == ["en", "fr"]
    languages = {r["email"]: r["language"] for r in run.json("subscribers", "list")}
    assert languages["a@example.org"] == "es"  # their own preference is kept


def test_rename_moves_subscribers_and_warns_about_list_id_and_issues(run, workspace):
    make_list(run)
    add(run, "a@example.org", "fr")
    issue = workspace / "issues" / "2026-12"
    issue.mkdir(parents=True)
    (issue / "issue.toml").write_text('list = "news"\n', encoding="utf-8")
    result = run("lists", "rename", "news", "coalition")
    assert "list 'news' is now 'coalition'" in result.output
    assert "List-Id" in result.output and "2026-12" in result.output
    assert "/subscribe/coalition" in result.output
    assert [r["email"] for r in run.json("subscribers", "list", "--list", "coalition")] == [
        "a@example.org"]
    gone = run("lists", "show", "news", ok=False)
    assert gone.exit_code == 1 and "no list 'news'" in gone.output
    make_list(run, "other")
    taken = run("lists", "rename", "other", "coalition", ok=False)
    assert "already exists" in taken.output
    bad = run("lists", "rename", "other", "Not A Slug", ok=False)
    assert bad.exit_code == 1 and "lowercase" in bad.output


def sending_issue(services, slug: str = "news") -> None:
    """An issue of the list halfway through its send, as `newsletter send` leaves it."""
    with services.engine.begin() as conn:
        list_id = conn.scalar(select(MailingList.id).where(MailingList.slug == slug))
        conn.execute(insert(Issue).values(slug="2026-12", list_id=list_id, status="sending"))


def test_delete_is_refused_while_an_issue_sends_and_keeps_suppressions(run, services):
    make_list(run)
    make_list(run, "board")
    add(run, "a@example.org", "fr")
    add(run, "a@example.org", "fr", "board")
    run("subscribers", "remove", "gone@example.org")  # puts the address on the suppression list
    sending_issue(services)
    refused = run("lists", "delete", "news", "--yes", ok=False)
    assert refused.exit_code == 1 and "'2026-12' is sending" in refused.output
    assert "Traceback" not in refused.output
    assert "is sending" in run("lists", "rename", "news", "x", ok=False).output
    with services.engine.begin() as conn:
        conn.execute(Issue.__table__.update().values(status="sent"))
    no = run("lists", "delete", "news", input="n\n", ok=False)
    assert "with its 1 subscription(s) and 1 issue(s)" in no.output
    assert no.exit_code == 1 and "nothing deleted" in no.output
    assert run.json("lists", "show", "news")["slug"] == "news"
    yes = run("lists", "delete", "news", input="y\n")
    assert "1 subscriptions, 1 issue records" in yes.output
    assert [d["slug"] for d in run.json("lists", "list")] == ["board"]
    assert [r["list"] for r in run.json("subscribers", "list")] == ["board"]
    with services.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Suppression)) == 1


def test_sync_applies_changes_made_in_lists_toml(run, workspace):
    make_list(run)
    add(run, "a@example.org", "es")
    toml = workspace / "subscribers" / "lists.toml"
    toml.write_text(
        '[[list]]\nslug = "news"\nname = "Coalition Bulletin"\nlanguages = ["en", "fr", "es", '
        '"pt"]\ndescription = "Monthly"\n\n'
        '[[list]]\nslug = "board"\nname = "Board"\nlanguages = ["en"]\n', encoding="utf-8")
    dry = run("lists", "sync", "--dry-run").output
    assert "would be created: board" in dry
    assert "news: name 'Coalition News' -> 'Coalition Bulletin'" in dry
    assert run.json("lists", "show", "news")["name"] == "Coalition News"
    out = run("lists", "sync").output
    assert "created: board" in out and "languages 'en,fr,es' -> 'en,fr,es,pt'" in out
    show = run.json("lists", "show", "news")
    assert show["name"] == "Coalition Bulletin" and show["languages"] == ["en", "fr", "es", "pt"]
    assert "every list already matches" in run("lists", "sync").output
    toml.write_text('[[list]]\nslug = "news"\nname = "N"\nlanguages = ["en"]\n',
                    encoding="utf-8")
    refused = run("lists", "sync", ok=False)
    assert refused.exit_code == 1 and "1 subscriber(s) read es" in refused.output
    assert run.json("lists", "show", "news")["name"] == "Coalition Bulletin"


def test_tables_are_never_cut_when_piped(run):
    run("lists", "add", "news", "--name", LONG_NAME, "--languages", "en,fr,es")
    email = "someone.with.a.very.long.address.indeed@an-organisation-with-a-long-name.example.org"
    run("subscribers", "add", email, "--list", "news", "--name", LONG_NAME)
    lists_out = run("lists", "list").output
    assert LONG_NAME in lists_out and "…" not in lists_out
    header, row = lists_out.splitlines()[:2]
    assert header.split("\t")[:2] == ["slug", "name"]
    assert row.split("\t")[:3] == ["news", LONG_NAME, "en,fr,es"]
    subs = run("subscribers", "list")
    assert email in subs.stdout and LONG_NAME in subs.stdout and "…" not in subs.stdout
    assert [line.split("\t")[0] for line in subs.stdout.splitlines()] == ["email", email]
    assert "1 subscription(s)" in subs.stderr
