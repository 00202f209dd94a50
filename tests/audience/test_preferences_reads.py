"""The reads behind the preferences and unsubscribe pages give the same answers on every path.

The web app reads through HotReads on SQLite and AsyncHotReads on PostgreSQL, and through
load_preferences()/membership() otherwise; each must show a subscriber the same lists, in their
language, with the same statuses.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, text

from newsletter.audience.hotreads import AsyncHotReads, HotReads
from newsletter.audience.language import list_languages
from newsletter.audience.listedits import add_list
from newsletter.audience.preferences import (
    ListChoice,
    Membership,
    PreferencesView,
    load_preferences,
    membership,
)
from newsletter.db.engine import is_sqlite, make_engine
from newsletter.db.models import Subscriber, Subscription, utcnow
from newsletter.errors import NotFoundError

HOT_APP = "nl_hot_reads_test"  # application_name of AsyncHotReads' connections in these tests


def add_person(engine: Engine, email: str, language: str | None, name: str = "",
               lists: dict[int, str] | None = None) -> int:
    """A subscriber (language may be None) with subscriptions {list id: status}."""
    now = utcnow()
    with engine.begin() as conn:
        sid = conn.execute(Subscriber.__table__.insert().values(
            email=email, name=name, language=language, attributes={}, created_at=now,
            updated_at=now)).inserted_primary_key[0]
        for list_id, status in (lists or {}).items():
            conn.execute(Subscription.__table__.insert().values(
                subscriber_id=sid, list_id=list_id, status=status, created_at=now,
                updated_at=now))
    return sid


@pytest.fixture
def people(services) -> SimpleNamespace:
    """Lists news (public, en/fr tables), board and staff (private), events (public, fr first);
    Ana (fr) confirmed on news and pending on board; Leo without a language or any list."""
    engine = services.engine
    news = add_list(engine, slug="news", name={"en": "News", "fr": "Nouvelles"},
                    description={"en": "Weekly", "fr": "Hebdo"}, languages=["en", "fr"],
                    default_language="en").id
    board = add_list(engine, slug="board", name="Board", languages=["en"],
                     default_language="en", public=False).id
    staff = add_list(engine, slug="staff", name="Staff", languages=["en"],
                     default_language="en", public=False).id
    events = add_list(engine, slug="events", name={"fr": "Rencontres", "en": "Events"},
                      description="Mensuel", languages=["fr", "en"], default_language="fr").id
    ana = add_person(engine, "ana@example.org", "fr", "Ana", {news: "confirmed", board: "pending"})
    leo = add_person(engine, "leo@example.org", None, "Leo")
    return SimpleNamespace(news=news, board=board, staff=staff, events=events, ana=ana, leo=leo)


def expected_views(p: SimpleNamespace) -> dict[tuple[int, int], PreferencesView]:
    """(subscriber, link's list) -> the view; lists in the order of their stored names."""
    offers = {"news": (["en", "fr"], "en"), "board": (["en"], "en"), "staff": (["en"], "en"),
              "events": (["fr", "en"], "fr")}

    def choice(list_id: int, slug: str, *shown: Any) -> ListChoice:
        return ListChoice(list_id, slug, *shown, languages=list_languages(*offers[slug], slug))

    board = choice(p.board, "board", "Board", "", False, "pending")
    staff = choice(p.staff, "staff", "Staff", "", False, None)
    return {
        # Ana's own private list, the link's private list, public ones; in French.
        (p.ana, p.staff): PreferencesView(p.ana, "ana@example.org", "Ana", "fr", (
            board, choice(p.news, "news", "Nouvelles", "Hebdo", True, "confirmed"),
            choice(p.events, "events", "Rencontres", "Mensuel", False, None), staff)),
        (p.ana, p.news): PreferencesView(p.ana, "ana@example.org", "Ana", "fr", (
            board, choice(p.news, "news", "Nouvelles", "Hebdo", True, "confirmed"),
            choice(p.events, "events", "Rencontres", "Mensuel", False, None))),
        # No language: each list in its own default language.
        (p.leo, p.news): PreferencesView(p.leo, "leo@example.org", "Leo", None, (
            choice(p.news, "news", "News", "Weekly", False, None),
            choice(p.events, "events", "Rencontres", "Mensuel", False, None))),
    }


def expected_memberships(p: SimpleNamespace) -> dict[tuple[int, int], Membership | None]:
    return {
        (p.ana, p.news): Membership("fr", "en", "Nouvelles", "confirmed"),
        (p.ana, p.board): Membership("fr", "en", "Board", "pending"),
        (p.leo, p.news): Membership(None, "en", "News", None),
        (p.leo, p.events): Membership(None, "fr", "Rencontres", None),
        (p.leo + 100, p.news): None,  # an erased subscriber
        (p.ana, p.events + 100): None,  # a deleted list
    }


def answers(prefs: Callable[[int, int], Any], member: Callable[[int, int], Any],
            p: SimpleNamespace) -> tuple[dict[Any, Any], dict[Any, Any]]:
    views = {key: prefs(*key) for key in expected_views(p)}
    members = {key: member(*key) for key in expected_memberships(p)}
    return views, members


def test_load_preferences_and_membership_show_the_lists_in_the_subscribers_language(
    services, people
) -> None:
    with services.engine.connect() as conn:
        got = answers(lambda sid, lid: load_preferences(conn, sid, lid),
                      lambda sid, lid: membership(conn, sid, lid), people)
    assert got == (expected_views(people), expected_memberships(people))
    assert got[0][(people.ana, people.news)].subscribed is True
    assert got[0][(people.leo, people.news)].subscribed is False


@pytest.mark.postgresql_only
def test_concurrent_reads_on_postgresql_share_statements_and_each_gets_its_own_answer(
    services, people
) -> None:
    hot = AsyncHotReads(services.engine)
    statements = []
    rows = hot.conns.rows

    async def counted(sql: str, params: Any) -> list[Any]:
        statements.append(sql)
        return await rows(sql, params)

    hot.conns.rows = counted  # type: ignore[method-assign]
    views, members = expected_views(people), expected_memberships(people)

    async def at_once() -> tuple[list[Any], list[Any]]:
        try:
            got = await asyncio.gather(*(hot.preferences(*key) for key in [*views] * 5),
                                       *(hot.membership(*key) for key in [*members] * 5))
        finally:
            await hot.close()
        return got[: 5 * len(views)], got[5 * len(views):]

    got_views, got_members = asyncio.run(at_once())
    assert got_views == [*views.values()] * 5  # each with its lists, in their order
    assert got_members == [*members.values()] * 5
    # 15 pages and 30 memberships in at most two statements each (two lanes per read).
    assert len(statements) <= 4


@pytest.mark.sqlite_only
def test_hot_reads_on_sqlite_answer_as_load_preferences_does(services, people) -> None:
    hot = HotReads(services.engine)
    try:
        assert answers(hot.preferences, hot.membership, people) == (
            expected_views(people), expected_memberships(people))
    finally:
        hot.close()


@pytest.mark.postgresql_only
def test_async_hot_reads_on_postgresql_answer_as_load_preferences_does(services, people) -> None:
    hot = AsyncHotReads(services.engine)

    async def both() -> tuple[dict[Any, Any], dict[Any, Any]]:
        views = {key: await hot.preferences(*key) for key in expected_views(people)}
        members = {key: await hot.membership(*key) for key in expected_memberships(people)}
        await hot.close()
        return views, members

    assert asyncio.run(both()) == (expected_views(people), expected_memberships(people))


def test_a_subscriber_with_no_list_to_offer_still_gets_their_page(services) -> None:
    engine = services.engine
    private = add_list(engine, slug="board", name={"en": "Board", "fr": "Conseil"},
                       description={"en": "Members only", "fr": "Membres"},
                       languages=["en", "fr"], default_language="en", public=False).id
    sid = add_person(engine, "solo@example.org", "es", "Solo")
    alone = PreferencesView(sid, "solo@example.org", "Solo", "es", ())
    with engine.connect() as conn:
        # Through the private list's own link: that list alone, in its default language (the
        # list has no Spanish name).
        assert load_preferences(conn, sid, private) == PreferencesView(
            sid, "solo@example.org", "Solo", "es",
            (ListChoice(private, "board", "Board", "Members only", False, None,
                        languages=list_languages(["en", "fr"], "en", "board")),))
        # The link's list was deleted since: nothing to offer, but the page still shows them.
        assert load_preferences(conn, sid, private + 1) == alone
        with pytest.raises(NotFoundError, match="no longer exists"):
            load_preferences(conn, sid + 1, private)
    if is_sqlite(engine):
        hot = HotReads(engine)
        assert hot.preferences(sid, private + 1) == alone
        with pytest.raises(NotFoundError):
            hot.preferences(sid + 1, private)
        hot.close()
    else:
        hot_async = AsyncHotReads(engine)

        async def read() -> None:
            assert await hot_async.preferences(sid, private + 1) == alone
            with pytest.raises(NotFoundError):
                await hot_async.preferences(sid + 1, private)
            await hot_async.close()

        asyncio.run(read())


@pytest.mark.sqlite_only
def test_hot_reads_hold_one_connection_per_thread_and_give_them_back_on_close(
    services, people
) -> None:
    engine = services.engine
    hot = HotReads(engine)
    view = expected_views(people)[(people.ana, people.news)]
    assert hot.preferences(people.ana, people.news) == view
    assert hot.preferences(people.ana, people.news) == view  # the same connection again
    assert engine.pool.checkedout() == 1
    other = threading.Thread(target=hot.preferences, args=(people.ana, people.news))
    other.start()
    other.join()
    assert engine.pool.checkedout() == 2
    hot.close()
    assert engine.pool.checkedout() == 0
    # Still usable after close (the app closes it on shutdown; a late request reopens one).
    assert hot.membership(people.ana, people.news) == Membership("fr", "en", "Nouvelles",
                                                                 "confirmed")
    hot.close()
    assert engine.pool.checkedout() == 0


def _backends(engine: Engine) -> int:
    """How many AsyncHotReads connections the server has; none may hold a transaction open
    (it would hold locks and block VACUUM and migrations)."""
    with engine.connect() as conn:
        states = conn.execute(text(
            "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = :app"), {"app": HOT_APP}).scalars().all()
    assert set(states) <= {"idle"}, states
    return len(states)


def _settled_backends(engine: Engine, expected: int, wait: float = 5.0) -> int:
    """_backends() once it reaches `expected`, or after `wait` seconds: a closed connection's
    server process leaves pg_stat_activity a moment after the client let it go."""
    deadline = time.monotonic() + wait
    while (found := _backends(engine)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _drop_backends(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND application_name = :app"),
                     {"app": HOT_APP})


@pytest.fixture
def hot_engine(services, db_url: str) -> Iterator[Engine]:
    """An engine whose AsyncHotReads connections can be told apart."""
    engine = make_engine(f"{db_url}?application_name={HOT_APP}")
    yield engine
    engine.dispose()


@pytest.mark.postgresql_only
def test_async_hot_reads_open_at_most_size_connections_and_close_them(
    services, people, hot_engine: Engine
) -> None:
    view = expected_views(people)[(people.ana, people.news)]
    hot = AsyncHotReads(hot_engine, size=2)

    async def many() -> list[PreferencesView]:
        return list(await asyncio.gather(
            *(hot.preferences(people.ana, people.news) for _ in range(12))))

    assert asyncio.run(many()) == [view] * 12
    # Reads that arrive together share statements: at most one connection per slot in use.
    assert 1 <= _backends(services.engine) <= 2
    # A second event loop (the app restarted in the same process) opens its own connections.
    assert asyncio.run(many()) == [view] * 12
    assert asyncio.run(hot.close()) is None
    assert _settled_backends(services.engine, 0) == 0
    assert AsyncHotReads(hot_engine).size == 4


@pytest.mark.postgresql_only
def test_async_hot_reads_survive_connections_the_server_dropped(
    services, people, hot_engine: Engine
) -> None:
    hot = AsyncHotReads(hot_engine, size=2)
    expected = expected_views(people)[(people.ana, people.news)]
    member = Membership("fr", "en", "Nouvelles", "confirmed")

    async def reads() -> None:
        assert [await hot.preferences(people.ana, people.news) for _ in range(2)] == [expected] * 2
        _drop_backends(services.engine)  # a server restart or an idle timeout
        await asyncio.sleep(0.2)
        assert await hot.preferences(people.ana, people.news) == expected
        assert await hot.membership(people.ana, people.news) == member
        assert _backends(services.engine) == 2
        await hot.close()

    asyncio.run(reads())


@pytest.mark.parametrize(("theirs", "page", "shown"), [
    ("es", "en", "es"),  # their own language, offered
    (None, "es", "es"),  # none stored: the page's, offered
    (None, "en", "fr"),  # neither offered: the first the lists offer, never the page's
    ("de", "en", "fr"),
])
def test_the_form_selects_an_offered_language(theirs, page, shown) -> None:
    from newsletter.audience.language import ListLanguages

    choice = ListChoice(1, "news", "News", "", True, "confirmed", ListLanguages(("fr", "es"), "fr"))
    view = PreferencesView(7, "a@example.org", "A", theirs, (choice,))
    assert view.shown_language(page) == shown
