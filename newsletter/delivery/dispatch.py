"""The send service: plan, enqueue, deliver, finish; also the dry run and test copies.

The CLI calls these in order (prepare_send -> begin_send -> deliver) and only prints; the same
functions serve any other front end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from newsletter.audience.lists import ListInfo, list_by_slug
from newsletter.config import Settings
from newsletter.db.models import utcnow
from newsletter.db.tables import DELIVERIES, ISSUES, SUBSCRIBERS
from newsletter.delivery import queue as q
from newsletter.delivery.errors import RelayUnavailable, SendError
from newsletter.delivery.livecheck import failing_urls, image_urls
from newsletter.delivery.plan import LanguagePlan, check_resend, plan_languages
from newsletter.delivery.pool import Build, PoolSettings
from newsletter.delivery.relay import Relay
from newsletter.delivery.runner import RunConfig, RunResult, run_workers
from newsletter.delivery.smtp import Unreachable, probe, send_each
from newsletter.errors import NotFoundError
from newsletter.keyring import link_signer, read_address_key

if TYPE_CHECKING:
    from newsletter.archive.publish import PublishedIssue


@dataclass(frozen=True)
class SendPlan:
    """What a send will do, shown to the editor before anything is written."""

    slug: str
    mailing_list: ListInfo
    languages: tuple[str, ...]
    issue: q.IssueRow | None
    plan: LanguagePlan | None  # None: nothing new to enqueue (resuming)
    remaining: int  # deliveries already queued and not settled
    editions: dict[str, q.EditionRecord] = field(default_factory=dict)
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


def edition_record(edition: Any) -> q.EditionRecord:
    """The archive's copy of a compiled edition (text filled for an anonymous reader)."""
    from newsletter.compose.slots import Slots

    web_url = getattr(edition, "web_url", "")
    try:
        text = edition.fill(Slots(web_url=web_url))[1]
    except Exception:  # the archive copy must never block a send
        text = getattr(edition, "text_shell", "")
    return q.EditionRecord(
        language=edition.language, subject=edition.subject, title=edition.title,
        preheader=edition.preheader, issue_date=str(edition.date), volume=str(edition.volume),
        number=str(edition.number), web_html=edition.web_html, text=text,
        content_hash=edition.content_hash)


def load_source(settings: Settings, slug: str) -> tuple[Any, dict[str, Any]]:
    """The issue's source and its compiled editions, one per language file."""
    from newsletter.compose import compile_issue, load_issue

    source = load_issue(settings.workspace, slug)
    return source, {lang: compile_issue(source, lang, settings) for lang in source.languages}


def check_source(settings: Settings, source: Any, languages: Sequence[str],
                 fallback: str | None = None) -> tuple[str, ...]:
    """Run the pre-send checks; raise on errors, return the warnings.

    With --fallback-language the editor has decided what readers of a missing translation get,
    so missing-translation findings no longer block.
    """
    from newsletter.compose import check_issue

    report = check_issue(source, settings, list(languages))
    errors: list[str] = []
    warnings: list[str] = []
    for f in report.findings:
        text = f.format() if hasattr(f, "format") else str(f)
        waived = fallback is not None and getattr(f, "rule", "") == "missing-translation"
        is_error = getattr(f, "severity", "error") == "error" and not waived
        (errors if is_error else warnings).append(text)
    if not settings["newsletter"]["base_url"].startswith("https://"):
        warnings.append("[newsletter] base_url is not https: mailbox providers offer one-click "
                        "unsubscribe (RFC 8058) only for an https List-Unsubscribe link")
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise SendError(f"issue {source.slug!r} has errors and was not sent: "
                        f"{'; '.join(errors[:3])}{more}")
    return tuple(warnings)


def prepare_send(
    settings: Settings, engine: Engine, slug: str, *, fallback: str | None = None,
    force: bool = False, resend_unknown: bool = False, check: bool = True,
) -> SendPlan:
    """Decide what `send` would do: refuses, language plan, counts. Writes nothing."""
    source, compiled = load_source(settings, slug)
    mailing_list = _find_list(engine, source.list_slug)
    languages = tuple(source.languages)
    with engine.connect() as conn:
        issue = q.find_issue(conn, slug)
        stored = q.stored_hashes(conn, issue.id) if issue else {}
        mailed = 0
        if issue:
            mailed = conn.execute(select(func.count()).where(
                DELIVERIES.c.issue_id == issue.id, DELIVERIES.c.status == "sent")).scalar_one()
    if issue is not None and issue.list_id != mailing_list.id:
        raise SendError(f"issue {slug!r} was sent to another list before; use a new slug")
    check_resend(issue.status if issue else None, mailed, force or resend_unknown)
    editions = {lang: edition_record(e) for lang, e in compiled.items()}
    changed = sorted(
        lang for lang, h in stored.items() if lang in editions and editions[lang].content_hash != h
    )
    if changed and issue and issue.status != "draft" and not force:
        raise SendError(
            f"issue {slug!r} changed since its send started ({', '.join(changed)}): "
            f"restore it, or pass --force to send the new text to the rest"
        )
    plan = None
    if issue is None or issue.status == "draft" or force:
        counts = q.count_by_language(engine, mailing_list.id, mailing_list.reading,
                                     address_key(engine), issue.id if issue else None)
        plan = plan_languages(counts, languages, fallback)
    warnings = (check_source(settings, source, mailing_list.reading.offered, fallback)
                if check else ())
    remaining = q.remaining(engine, issue.id) if issue else 0
    live = {
        lang: tuple(u for u in (e.web_url, *image_urls(e.html_shell)) if u)
        for lang, e in compiled.items()
    }
    return SendPlan(
        slug=slug,
        mailing_list=mailing_list,
        languages=languages,
        issue=issue,
        plan=plan,
        remaining=remaining,
        editions=editions,
        warnings=warnings,
        live_urls=live,
    )


def publishes(settings: Settings, check: bool | None) -> bool:
    """Whether send publishes and checks the web version: the flag, else [send] publish_check."""
    return bool(settings["send"]["publish_check"] if check is None else check)


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
    from newsletter.archive.urls import archive_base_url

    listed = "; ".join(f"{url} {problem}" for url, problem in failing)
    raise SendError(
        f"issue {plan.slug!r} was not sent: {len(failing)} of the email's picture and web "
        f"version URLs do not answer: {listed}. The site was written to "
        f"{settings['archive']['out']}/; serve it at {archive_base_url(settings)}/ (`newsletter "
        f"serve` does, under /archive/), or pass --no-publish-check if you publish it by "
        f"other means"
    )


def update_archive(settings: Settings, engine: Engine) -> str | None:
    """After a send, rebuild the archive so indexes and feeds list the issue; None if done,
    else why not (the mails are out: a site problem must not look like a failed send)."""
    from newsletter.archive.builder import build_archive
    from newsletter.errors import NewsletterError

    try:
        build_archive(settings=settings, engine=engine)
    except (NewsletterError, OSError) as exc:
        return f"the archive was not updated ({exc}); run `newsletter archive build`"
    return None


def begin_send(engine: Engine, settings: Settings, plan: SendPlan) -> tuple[int, int]:
    """One transaction: issue row, editions, set-based enqueue, status sending -> (id, added)."""
    added = 0
    with q.write_tx(engine) as conn, conn.begin():
        issue = q.open_issue(conn, plan.slug, plan.mailing_list.id)
        q.store_editions(conn, issue.id, plan.editions.values())
        if plan.plan is not None:
            added = q.enqueue(
                conn,
                engine,
                issue_id=issue.id,
                list_id=plan.mailing_list.id,
                languages=plan.mailing_list.reading,
                address_key=address_key(engine),
                mapping=plan.plan.mapping,
            )
        q.set_issue_status(conn, issue.id, "sending")
    return issue.id, added


def issue_content(
    settings: Settings, slug: str, mailing_list: ListInfo, subject_prefix: str = ""
) -> Mapping[str, Build]:
    """Per-language build functions; compiled once per worker process."""
    from newsletter.delivery.message import MessageBuilder, Recipient, load_dkim, smtp_address

    _source, compiled = load_source(settings, slug)
    if subject_prefix:
        compiled = {
            lang: dataclasses.replace(e, subject=subject_prefix + e.subject)
            for lang, e in compiled.items()
        }
    signer = link_signer(settings)
    dkim = load_dkim(settings)
    builds: dict[str, Build] = {}
    for lang, edition in compiled.items():
        builder = MessageBuilder(
            settings=settings,
            edition=edition,
            issue_slug=slug,
            list_id=mailing_list.id,
            list_slug=mailing_list.slug,
            list_name=mailing_list.name,
            signer=signer,
            dkim=dkim,
        )

        def build(c: q.Claimed, builder: MessageBuilder = builder) -> tuple[str, str, bytes]:
            mail_from, data = builder.build(
                Recipient(
                    delivery_id=c.delivery_id,
                    subscriber_id=c.subscriber_id,
                    email=c.email,
                    name=c.name,
                    attributes=c.attributes,
                )
            )
            return mail_from, smtp_address(c.email), data

        builds[lang] = build
    return builds


def pool_settings(
    settings: Settings, connections: int | None = None, rate: float | None = None, workers: int = 1
) -> PoolSettings:
    """[smtp] settings with flag overrides; the rate is shared among the worker processes."""
    s = settings["smtp"]
    total = s["rate"] if rate is None else rate
    return PoolSettings(
        connections=connections or s["connections"],
        messages_per_connection=s["messages_per_connection"],
        rate=total / max(1, workers) if total else 0.0,
        retry_delay=s["retry_delay"],
        max_attempts=s["max_attempts"],
    )


def default_workers(cores: int | None) -> int:
    """Sender processes for a machine with `cores` CPUs: one per two cores.

    Each worker shares the machine with the relay (Postfix's smtpd), the database and the
    parent process. On 2 cores one worker with 16 connections sent 1,964 msg/s against
    1,409-1,559 for two workers with 8 each (issue 16, bench/send_bench.py, quiet machine): a
    second process there only adds its own journal, claims and contention for SQLite's
    write lock.
    """
    return max(1, (cores or 1) // 2)


@dataclass(frozen=True)
class Concurrency:
    """How many processes and SMTP connections a send uses, and whether the editor chose."""

    workers: int
    connections: int  # per worker
    chosen: bool  # False: picked for the machine

    def describe(self) -> str:
        how = "" if self.chosen else f" (picked for {os.cpu_count() or 1} CPU cores)"
        noun = "worker" if self.workers == 1 else "workers"
        return f"{self.workers} {noun} x {self.connections} SMTP connections{how}"


def concurrency(settings: Settings, workers: int | None, connections: int | None) -> Concurrency:
    """The flags, else [smtp] workers and connections; workers 0 means one per two cores."""
    chosen = workers or settings["smtp"]["workers"]
    return Concurrency(workers=chosen or default_workers(os.cpu_count()),
                       connections=connections or settings["smtp"]["connections"],
                       chosen=bool(chosen))


def deliver(
    settings: Settings,
    engine: Engine,
    slug: str,
    issue_id: int,
    plan: SendPlan,
    progress: Any,
    *,
    workers: int = 1,
    connections: int | None = None,
    rate: float | None = None,
    resend_unknown: bool = False,
) -> tuple[RunResult, str]:
    """Recover what a crash left, run the workers, set the issue's final status."""
    q.recover(engine, issue_id, resend_unknown=resend_unknown)
    s = settings["smtp"]
    cfg = RunConfig(
        settings=settings,
        issue_id=issue_id,
        address_key=address_key(engine),
        content=functools.partial(issue_content, settings, slug, plan.mailing_list),
        pool=pool_settings(settings, connections, rate, workers),
        batch_size=s["batch_size"],
        lease=s["lease"],
        retry_window=s["retry_window"],
        workers=workers,
    )
    try:
        result = run_workers(cfg, progress)
    finally:
        status = finish(engine, issue_id)
    if result.interrupted:
        status = finish(engine, issue_id, paused=True)
    return result, status


def finish(engine: Engine, issue_id: int, paused: bool = False) -> str:
    """sent when nothing is left to do, paused after Ctrl-C, else still sending."""
    left = q.remaining(engine, issue_id)
    status = "sent" if left == 0 else ("paused" if paused else "sending")
    with q.write_tx(engine) as conn, conn.begin():
        q.set_issue_status(conn, issue_id, status)
    return status


def check_relay(settings: Settings) -> None:
    """Fail fast, before anything is written, when the relay is down."""
    relay = Relay.from_settings(settings)
    try:
        asyncio.run(probe(relay))
    except Unreachable as exc:
        raise RelayUnavailable(
            f"cannot send: the SMTP relay at {relay.describe()} {exc.reason}"
        ) from None


@dataclass(frozen=True)
class DryRunReport:
    """What a dry run built: messages and bytes per language."""

    messages: dict[str, int]
    total_bytes: int
    smallest: int
    largest: int


def _pending(settings: Settings, plan: SendPlan, resend_unknown: bool) -> q.Pending | None:
    """Whom the real send would mail: new recipients if it enqueues, plus the unsettled rows
    due within [smtp] retry_window (the run waits that long for retries, no longer)."""
    if plan.issue is None:
        return None
    statuses = (*q.OPEN, "unknown") if resend_unknown else q.OPEN
    due_by = utcnow() + timedelta(seconds=settings["smtp"]["retry_window"])
    return q.Pending(plan.issue.id, plan.plan is not None, statuses, due_by)


def dry_run(
    settings: Settings, engine: Engine, plan: SendPlan, resend_unknown: bool = False
) -> DryRunReport:
    """Build every message the send would build, without SMTP and without writing anything.

    Only the recipients the real run would mail are counted: after a first send, `--force`
    adds those not mailed yet, and a resume mails the deliveries still waiting.
    """
    mapping = plan.plan.mapping if plan.plan else {}
    builds = issue_content(settings, plan.slug, plan.mailing_list)
    messages: dict[str, int] = {}
    total, smallest, largest = 0, 0, 0
    ml = plan.mailing_list
    for rows in q.stream_audience(
        engine,
        ml.id,
        ml.reading,
        address_key(engine),
        pending=_pending(settings, plan, resend_unknown),
    ):
        for row in rows:
            lang = mapping.get(row.lang, row.lang)
            if lang not in builds:
                raise SendError(
                    f"no {lang} edition for subscriber language {row.lang}: pass "
                    f"--fallback-language"
                )
            claimed = q.Claimed(0, row.id, row.email, row.name or "", row.attributes or {}, lang, 0)
            size = len(builds[lang](claimed)[2])
            messages[lang] = messages.get(lang, 0) + 1
            total += size
            smallest = size if not smallest else min(smallest, size)
            largest = max(largest, size)
    return DryRunReport(messages=messages, total_bytes=total, smallest=smallest, largest=largest)


def send_tests(
    settings: Settings, engine: Engine, plan: SendPlan, addresses: Sequence[str]
) -> list[TestCopy]:
    """Real copies of every language to each address, subject prefixed ([send]
    test_subject_prefix) so nobody mistakes one for the real send; deliveries are not touched."""
    prefix = settings["send"]["test_subject_prefix"]
    builds = issue_content(settings, plan.slug, plan.mailing_list, prefix)
    return asyncio.run(_send_tests(Relay.from_settings(settings), builds, addresses))


@dataclass(frozen=True)
class TestCopy:
    """What happened to one test copy: status as smtp.Result has it, and the server's reply."""

    to: str
    language: str
    status: str
    reply: str


async def _send_tests(
    relay: Relay, builds: Mapping[str, Build], addresses: Sequence[str]
) -> list[TestCopy]:
    copies = [(address, lang) for address in addresses for lang in builds]
    envelopes = [
        builds[lang](q.Claimed(0, 0, address, "", {}, lang, 0)) for address, lang in copies
    ]
    try:
        results = await send_each(relay, envelopes, stop_if_unreachable=True)
    except Unreachable as exc:
        raise SendError(
            f"cannot send test copies: the SMTP relay at {relay.describe()} {exc.reason}"
        ) from None
    return [
        TestCopy(address, lang, result.status, result.reply)
        for (address, lang), result in zip(copies, results, strict=True)
    ]


# ---------------------------------------------------------------- status report


@dataclass(frozen=True)
class IssueStatus:
    """What `issue status` shows."""

    slug: str
    status: str
    counts: dict[str, int]
    by_language: dict[str, dict[str, int]]
    last_errors: list[dict[str, Any]]


def issue_status(engine: Engine, slug: str, errors: int = 10) -> IssueStatus | None:
    """Counts by status and language, and the latest replies that were not success."""
    from newsletter.db.models import DELIVERY_STATUSES

    with engine.connect() as conn:
        issue = q.find_issue(conn, slug)
        if issue is None:
            return None
        counts = dict.fromkeys(DELIVERY_STATUSES, 0)
        by_language: dict[str, dict[str, int]] = {}
        for lang, status, n in conn.execute(
            select(DELIVERIES.c.language, DELIVERIES.c.status, func.count())
            .where(DELIVERIES.c.issue_id == issue.id)
            .group_by(DELIVERIES.c.language, DELIVERIES.c.status)
        ):
            counts[status] = counts.get(status, 0) + n
            by_language.setdefault(lang, dict.fromkeys(DELIVERY_STATUSES, 0))[status] = n
        last = conn.execute(
            select(
                DELIVERIES.c.id,
                SUBSCRIBERS.c.email,
                DELIVERIES.c.language,
                DELIVERIES.c.status,
                DELIVERIES.c.attempts,
                DELIVERIES.c.last_reply,
            )
            .join(SUBSCRIBERS, SUBSCRIBERS.c.id == DELIVERIES.c.subscriber_id)
            .where(
                DELIVERIES.c.issue_id == issue.id,
                DELIVERIES.c.last_reply.is_not(None),
                DELIVERIES.c.status.in_(("failed", "deferred", "unknown")),
            )
            .order_by(DELIVERIES.c.id.desc())
            .limit(errors)
        ).all()
    return IssueStatus(
        slug=slug,
        status=issue.status,
        counts=counts,
        by_language=by_language,
        last_errors=[
            {
                "delivery_id": r.id,
                "email": r.email,
                "language": r.language,
                "status": r.status,
                "attempts": r.attempts,
                "reply": r.last_reply,
            }
            for r in last
        ],
    )


def issue_summaries(engine: Engine) -> dict[str, tuple[str, dict[str, int]]]:
    """Every issue row: slug -> (status, deliveries by status), for `issue list`."""
    out: dict[str, tuple[str, dict[str, int]]] = {}
    with engine.connect() as conn:
        for slug, status in conn.execute(select(ISSUES.c.slug, ISSUES.c.status)):
            out[slug] = (status, {})
        for slug, status, n in conn.execute(
            select(ISSUES.c.slug, DELIVERIES.c.status, func.count())
            .join(DELIVERIES, DELIVERIES.c.issue_id == ISSUES.c.id)
            .group_by(ISSUES.c.slug, DELIVERIES.c.status)
        ):
            out[slug][1][status] = n
    return out
