"""The send service: plan, publish, enqueue, deliver.

The CLI calls these in order (prepare_send -> begin_send -> deliver) and only prints; the same
functions serve any other front end. begin_send enqueues the first chunk of the deliveries
(all of them for --detach and --at), and deliver adds the rest in a thread while the workers
send the rows already there: on PostgreSQL the enqueue's foreign-key checks cost about 2 s
for 50,000 rows, time the first messages no longer wait for. The dry run and test copies are
in rehearsal.py, the issue's states and status report in issues.py, its stored editions in
editions.py.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, select

from newsletter.audience.language import ListLanguages
from newsletter.audience.lists import ListInfo, list_by_slug
from newsletter.config import Settings
from newsletter.db import statistics
from newsletter.db.sender import write_tx
from newsletter.db.tables import LISTS, SUBSCRIBERS, SUBSCRIPTIONS, SUPPRESSIONS
from newsletter.delivery import content, issuedata, letterhead
from newsletter.delivery import queue as q
from newsletter.delivery.concurrency import pool_settings
from newsletter.delivery.crew import Crew, run_workers
from newsletter.delivery.editions import (
    EditionRecord,
    changed_languages,
    compiled_editions,
    edition_record,
    load_source,
    store_editions,
    stored_editions,
)
from newsletter.delivery.errors import SendError
from newsletter.delivery.issues import (
    IssueRow,
    find_issue,
    finish,
    mailed,
    open_issue,
    remaining,
    schedule,
    set_issue_status,
    waiting_languages,
)
from newsletter.delivery.journal import Progress
from newsletter.delivery.livecheck import failing_urls, image_urls
from newsletter.delivery.plan import LanguagePlan, check_resend, plan_languages
from newsletter.delivery.recipients import count_by_language
from newsletter.delivery.relayview import check_reachable
from newsletter.delivery.runner import RunConfig, RunResult
from newsletter.delivery.schedule import Schedule
from newsletter.errors import NewsletterError, NotFoundError
from newsletter.keyring import read_address_key

if TYPE_CHECKING:
    from newsletter.archive.publish import PublishedIssue
    from newsletter.compose import CompiledEdition, IssueSource

# Hears an enqueue's progress: the rows it added so far, and whether it is done.
Enqueued = Callable[[int, bool], None]
FALLBACK = "fallback"  # the issue data's key for the --fallback-language of its enqueue


@dataclass(frozen=True)
class SendPlan:
    """What a send will do, shown to the editor before anything is written."""

    slug: str
    mailing_list: ListInfo
    languages: tuple[str, ...]
    issue: IssueRow | None
    plan: LanguagePlan | None  # None: nothing new to enqueue (resuming)
    remaining: int  # deliveries already queued and not settled
    editions: dict[str, EditionRecord] = field(default_factory=dict)
    # What the messages are built from: compiled now, or the copies stored at enqueue.
    compiled: dict[str, CompiledEdition] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # The email's pictures and "view in browser" pages, which must answer before it goes out.
    live_urls: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def resuming(self) -> bool:
        return self.issue is not None and self.issue.status in ("sending", "paused")


def address_key(engine: Engine) -> str:
    """The database's address key, which the sender hashes with to skip suppressions."""
    with engine.connect() as conn:
        return read_address_key(conn)


def _find_list(engine: Engine, slug: str) -> ListInfo:
    with engine.connect() as conn:
        info = list_by_slug(conn, slug)
    if info is None:
        raise NotFoundError(f"the issue's list {slug!r} does not exist: create it with "
                            f"`newsletter lists add {slug}`")
    return info


def base_url_warnings(settings: Settings) -> list[str]:
    """One-click unsubscribe needs an https base URL."""
    if settings.newsletter.base_url.startswith("https://"):
        return []
    return ["[newsletter] base_url is not https: mailbox providers offer one-click "
            "unsubscribe (RFC 8058) only for an https List-Unsubscribe link"]


def check_source(settings: Settings, source: IssueSource, languages: Sequence[str],
                 fallback: str | None = None,
                 compiled: Mapping[str, CompiledEdition] | None = None) -> list[str]:
    """Run the pre-send checks (on the editions in `compiled` as they are, not compiled
    again); raise on errors, return the warnings.

    With --fallback-language the editor has decided what readers of a missing translation get,
    so missing-translation findings no longer block.
    """
    from newsletter.compose import check_issue

    report = check_issue(source, settings, list(languages), compiled=compiled)
    errors: list[str] = []
    warnings: list[str] = []
    for f in report.findings:
        waived = fallback is not None and f.rule == "missing-translation"
        is_error = f.severity == "error" and not waived
        (errors if is_error else warnings).append(f.format())
    warnings += base_url_warnings(settings)
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise SendError(f"issue {source.slug!r} has errors and was not sent: "
                        f"{'; '.join(errors[:3])}{more}")
    return warnings


def prepare_send(
    settings: Settings, engine: Engine, slug: str, *, fallback: str | None = None,
    force: bool = False, resend_unknown: bool = False, check: bool = True,
) -> SendPlan:
    """Decide what `send` would do: refuses, language plan, counts. Writes nothing.

    A first send (and --force) compiles the issue from the workspace; a resumed send takes the
    editions stored at enqueue, so the recipients still waiting get what the first ones got.
    """
    with engine.connect() as conn:
        issue = find_issue(conn, slug)
        check_resend(issue.status if issue else None, mailed(conn, issue.id) if issue else 0,
                     force or resend_unknown)
        stored = stored_editions(conn, issue.id) if issue else {}
    if issue is not None and issue.status != "draft" and not force:
        return _resume(settings, engine, issue, stored, fallback)
    source, compiled = load_source(settings, slug)
    mailing_list = _find_list(engine, source.list_slug)
    if issue is not None and issue.list_id != mailing_list.id:
        raise SendError(f"issue {slug!r} was sent to another list before; use a new slug")
    counts = _audience_counts(engine, mailing_list, issue.id if issue else None)
    plan = plan_languages(counts, tuple(source.languages), fallback)
    warnings = (check_source(settings, source, mailing_list.reading.offered, fallback, compiled)
                if check else [])
    return _plan(engine, slug, issue, mailing_list, compiled, warnings, plan)


def _resume(settings: Settings, engine: Engine, issue: IssueRow,
            stored: dict[str, EditionRecord], fallback: str | None = None) -> SendPlan:
    """The plan of a send under way: its list and the editions stored at enqueue; if that
    send stopped before it had enqueued everyone, the rest of its enqueue, planned as then."""
    with engine.connect() as conn:
        list_slug = conn.scalar(select(LISTS.c.slug).where(LISTS.c.id == issue.list_id))
        waiting = waiting_languages(conn, issue.id)
        unfinished = q.enqueuing(conn, issue.id)
        fallback = fallback or issuedata.read(conn, issue.id).get(FALLBACK)
    compiled = compiled_editions(settings, issue.slug, stored, waiting)
    mailing_list = _find_list(engine, str(list_slug))
    plan = None
    if unfinished:
        counts = _audience_counts(engine, mailing_list, issue.id)
        plan = plan_languages(counts, tuple(compiled), fallback)
    warnings = [*_drift(settings, issue.slug, stored), *base_url_warnings(settings)]
    return _plan(engine, issue.slug, issue, mailing_list, compiled, warnings, plan)


def _audience_counts(engine: Engine, mailing_list: ListInfo,
                     issue_id: int | None) -> dict[str, int]:
    """Recipients not enqueued yet, per language; the planner's statistics of the audience's
    tables are brought up to date first (db/statistics.py). Not those of `deliveries`, which
    the enqueue is about to fill: analyzed now, empty, they led the workers' queries to plans
    for an empty table."""
    statistics.refresh(engine, (SUBSCRIBERS, SUBSCRIPTIONS, SUPPRESSIONS))
    return count_by_language(engine, mailing_list.id, mailing_list.reading,
                             address_key(engine), issue_id)


def _plan(engine: Engine, slug: str, issue: IssueRow | None, mailing_list: ListInfo,
          compiled: dict[str, CompiledEdition], warnings: Sequence[str],
          plan: LanguagePlan | None = None) -> SendPlan:
    """The plan for these editions; `plan` None when resuming (nothing new to enqueue)."""
    return SendPlan(
        slug=slug,
        mailing_list=mailing_list,
        languages=tuple(compiled),
        issue=issue,
        plan=plan,
        remaining=remaining(engine, issue.id) if issue else 0,
        editions={lang: edition_record(e) for lang, e in compiled.items()},
        compiled=compiled,
        warnings=tuple(warnings),
        live_urls={lang: tuple(u for u in (e.web_url, *image_urls(e.html_shell)) if u)
                   for lang, e in compiled.items()},
    )


def _drift(settings: Settings, slug: str, stored: Mapping[str, EditionRecord]) -> list[str]:
    """A warning when the workspace's text is no longer the one a resumed send mails."""
    try:
        changed = changed_languages(stored, load_source(settings, slug)[1])
    except NewsletterError:  # gone or broken: the stored editions are all the send needs
        return []
    if not changed:
        return []
    return [f"issue {slug!r} changed since its send started ({', '.join(changed)}): the rest "
            f"get the text as it was enqueued; pass --force to send them the new text"]



def publishes(settings: Settings, check: bool | None) -> bool:
    """Whether send publishes and checks the web version: the flag, else [send] publish_check."""
    return bool(settings.send.publish_check if check is None else check)


def publish(
    settings: Settings, engine: Engine, plan: SendPlan, *, every_language: bool = False
) -> PublishedIssue:
    """Put the issue's web version and images in the site, then check the email's URLs answer.

    Only the languages that go out are published (all of them for test copies). The pages stay
    out of the indexes and feeds until the send is done (update_archive).
    """
    from newsletter.archive.publish import publish_issue

    languages = [
        lang
        for lang in plan.languages
        if every_language or plan.plan is None or lang in plan.plan.recipients
    ]
    published = publish_issue(
        settings,
        engine,
        plan.slug,
        plan.mailing_list.slug,
        plan.mailing_list.name,
        [plan.editions[lang] for lang in languages],
    )
    check_live(settings, plan, languages)
    return published


def check_live(settings: Settings, plan: SendPlan, languages: Sequence[str]) -> None:
    """Refuse, naming every failing URL, unless each picture and web-version URL answers 200."""
    failing = failing_urls(u for lang in languages for u in plan.live_urls.get(lang, ()))
    if not failing:
        return
    from newsletter.links import archive_base_url

    listed = "; ".join(f"{url} {problem}" for url, problem in failing)
    raise SendError(
        f"issue {plan.slug!r} was not sent: {len(failing)} of the email's picture and web "
        f"version URLs do not answer: {listed}. The site was written to "
        f"{settings.archive.out}/; serve it at {archive_base_url(settings)}/ (`newsletter "
        f"serve` does, under /archive/), or pass --no-publish-check if you publish it by "
        f"other means"
    )


def update_archive(settings: Settings, engine: Engine) -> str | None:
    """After a send, rebuild the archive so indexes and feeds list the issue; None if done,
    else why not (the mails are out: a site problem must not look like a failed send)."""
    from newsletter.archive.builder import build_archive

    try:
        build_archive(settings=settings, engine=engine)
    except (NewsletterError, OSError) as exc:
        return f"the archive was not updated ({exc}); run `newsletter archive build`"
    return None


FIRST_CHUNK = 1000  # rows enqueued before the workers start: enough for their first claims
CHUNK = 10000  # rows per transaction after that, added while the first messages go out


@dataclass
class Enqueue:
    """The enqueue of an issue's deliveries, one chunk (one transaction) at a time, in
    subscriber order; `issues.enqueuing` stays true until the chunk that finds nobody left."""

    engine: Engine
    issue_id: int
    list_id: int
    languages: ListLanguages
    address_key: str
    mapping: dict[str, str]
    after: int = 0  # the last subscriber id enqueued by this process
    added: int = 0
    done: bool = False

    def step(self, conn: Connection, limit: int) -> None:
        """Add the next chunk in the caller's transaction; the last one closes the enqueue."""
        added, self.after = q.enqueue_chunk(
            conn, self.engine, issue_id=self.issue_id, list_id=self.list_id,
            languages=self.languages, address_key=self.address_key, mapping=self.mapping,
            after=self.after, limit=limit)
        self.added += added
        self.done = added < limit
        q.set_enqueuing(conn, self.issue_id, not self.done)

    def rest(self, stop: threading.Event | None = None,
             on_chunk: Enqueued | None = None) -> None:
        """Add the remaining chunks, each in its own transaction, until done or `stop`; a
        cancelled issue gets no more rows."""
        while not self.done and not (stop is not None and stop.is_set()):
            with write_tx(self.engine) as conn, conn.begin():
                if q.lock_issue(conn, self.issue_id) == "cancelled":
                    return
                self.step(conn, CHUNK)
            if on_chunk is not None:
                on_chunk(self.added, self.done)


def _enqueue_of(engine: Engine, plan: SendPlan, issue_id: int) -> Enqueue:
    assert plan.plan is not None
    return Enqueue(engine, issue_id, plan.mailing_list.id, plan.mailing_list.reading,
                   address_key(engine), dict(plan.plan.mapping))


def begin_send(settings: Settings, engine: Engine, plan: SendPlan,
               at: Schedule | None = None, *, whole: bool = True) -> tuple[int, int]:
    """One transaction: issue row, compiled editions and sender identity, the first chunk of
    the enqueue, status sending (or scheduled `at`) -> (id, added). With `whole`, the other
    chunks follow before it returns; else `deliver` adds them while the workers send. The
    workers build every message from the editions and the identity stored here."""
    with write_tx(engine) as conn, conn.begin():
        issue = open_issue(conn, plan.slug, plan.mailing_list.id)
        store_editions(conn, issue.id, plan.editions.values())
        letterhead.store(conn, issue.id, settings)
        enqueue = None
        if plan.plan is not None:
            fallback = _fallback(plan.plan)
            if fallback is not None:  # for a resumed enqueue (a resumed plan may need none)
                issuedata.merge(conn, issue.id, {FALLBACK: fallback})
            enqueue = _enqueue_of(engine, plan, issue.id)
            enqueue.step(conn, FIRST_CHUNK)
        if at is None:
            set_issue_status(conn, issue.id, "sending")
        else:
            schedule(conn, issue.id, at.when, at.zone)
    if enqueue is None:
        return issue.id, 0
    if whole:
        enqueue.rest()
    return issue.id, enqueue.added


def _fallback(plan: LanguagePlan) -> str | None:
    """The --fallback-language this plan was made with, if any subscriber needed it."""
    return next((plan.mapping[lang] for lang in plan.fallbacks), None)


class _Rest:
    """The rest of an enqueue, added in a thread while the workers send the rows already
    there. If it fails, the issue is paused (the workers stop) and `join` raises."""

    def __init__(self, enqueue: Enqueue, slug: str, on_chunk: Enqueued | None) -> None:
        self.enqueue, self.slug, self.on_chunk = enqueue, slug, on_chunk
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="enqueue", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.enqueue.rest(self.stop, self.on_chunk)
        except Exception as exc:  # the workers must not wait for rows that will not come
            self.error = exc
            finish(self.enqueue.engine, self.enqueue.issue_id, paused=True)

    def join(self) -> None:
        """Stop after the chunk being added (the run is over), and report a failure."""
        self.stop.set()
        self.thread.join()
        if self.error is not None:
            raise SendError(f"the enqueue of issue {self.slug!r} stopped ({self.error}); "
                            f"run `newsletter send {self.slug}` again to finish it") \
                from self.error


def _rest_of(engine: Engine, plan: SendPlan, issue_id: int,
             on_chunk: Enqueued | None) -> _Rest | None:
    """A thread adding what begin_send left of the enqueue, if it left anything."""
    if plan.plan is None:
        return None
    with engine.connect() as conn:
        if not q.enqueuing(conn, issue_id):
            return None
    return _Rest(_enqueue_of(engine, plan, issue_id), plan.slug, on_chunk)


def deliver(
    settings: Settings,
    engine: Engine,
    slug: str,
    issue_id: int,
    plan: SendPlan,
    progress: Progress,
    *,
    workers: int = 1,
    connections: int | None = None,
    rate: float | None = None,
    resend_unknown: bool = False,
    on_enqueued: Enqueued | None = None,
    crew: Crew | None = None,
) -> tuple[RunResult, str]:
    """Recover what a crash left, run the workers (in `crew` if started ahead, see
    crew.Crew) while the enqueue adds what begin_send left of it (`on_enqueued` hears the
    rows added so far, and when it is done), set the issue's final status."""
    q.recover(engine, issue_id, resend_unknown=resend_unknown)
    s = settings.smtp
    cfg = RunConfig(
        settings=settings,
        issue_id=issue_id,
        address_key=address_key(engine),
        content=functools.partial(content.issue_content, settings, issue_id, slug,
                                  plan.mailing_list),
        pool=pool_settings(settings, connections, rate, workers),
        batch_size=s.batch_size,
        lease=s.lease,
        retry_window=s.retry_window,
        workers=workers,
    )
    rest = _rest_of(engine, plan, issue_id, on_enqueued)
    try:
        result = run_workers(cfg, progress, crew)
    finally:
        try:
            if rest is not None:
                rest.join()
        finally:
            status = finish(engine, issue_id)
    if result.interrupted:
        status = finish(engine, issue_id, paused=True)
    return result, status


def check_relay(settings: Settings, engine: Engine | None = None) -> None:
    """Fail fast, before anything is written, when the relay (every relay, if several) is
    down; with `engine`, a relay out in the shared view that answers is put back in."""
    asyncio.run(check_reachable(settings, engine))
