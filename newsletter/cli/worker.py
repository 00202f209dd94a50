"""`newsletter worker` (a long-running sender) and `newsletter workers` (who runs one)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import click

from newsletter.cli.context import AppContext, json_option, pass_app, print_json, print_table
from newsletter.errors import ValidationError

if TYPE_CHECKING:
    from newsletter.delivery.daemon import Observer


@click.command("worker")
@click.option("--until-idle", is_flag=True,
              help="Exit once nothing is due now (no issue to send, no system mail waiting): "
              "for cron on a single host, and for tests.")
@click.option("--lease", type=click.FloatRange(1), metavar="SECONDS",
              help="How long a claim is ours before another worker may take it over "
              "([smtp] lease).")
@click.option("--connections", type=click.IntRange(1, 500),
              help="SMTP connections per issue being sent ([smtp] connections).")
@click.option("--batch-size", type=click.IntRange(1, 100000),
              help="Deliveries claimed at a time ([smtp] batch_size).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Serve Prometheus metrics at http://ADDRESS:PORT/metrics (0: any free "
              "port, printed at start).")
@click.option("--metrics-address", default="127.0.0.1", show_default=True,
              help="The address the metrics endpoint listens on.")
@click.option("--signers", type=click.IntRange(0, 256), metavar="N",
              help="DKIM signer processes beside this worker, which make the RSA signatures "
              "([dkim] with the `cryptography` package). Default: one per CPU core but one. "
              "0 signs in the worker itself.")
@click.option("--build-archive/--no-build-archive", default=False, show_default=True,
              help="Rebuild the archive ([archive] out) after each issue this worker finishes "
              "sending, as `newsletter archive build` does: for one worker on the web host, "
              "started in the workspace.")
@pass_app
def worker(app: AppContext, until_idle: bool, lease: float | None, connections: int | None,
           batch_size: int | None, metrics_port: int | None, metrics_address: str,
           build_archive: bool, signers: int | None) -> None:
    """Send every issue that is sending, start scheduled ones, deliver system mails.

    Run any number of workers on any number of hosts. A worker needs no workspace: only
    NEWSLETTER_DATABASE_URL, NEWSLETTER_SECRET_KEY, the [smtp] and [dkim] settings (from the
    environment or a newsletter.toml). SIGTERM or Ctrl-C finishes the messages in flight,
    hands the other claims back and exits. With --build-archive it also rebuilds the archive
    when it finishes an issue.
    """
    from newsletter.delivery.daemon import WorkerOptions

    _require_database(app)
    if build_archive:
        app.services.archive.check_output()
    sending = app.services.sending
    options = WorkerOptions(lease=lease, connections=connections, batch_size=batch_size,
                            until_idle=until_idle, build_archive=build_archive,
                            signers=signers)
    with _metrics(app, metrics_port, metrics_address) as observer:
        report = sending.work(options, observer)
    counts = ", ".join(f"{k} {report.counts.get(k, 0)}"
                       for k in ("sent", "deferred", "failed", "unknown"))
    issues = ", ".join(sorted(report.issues)) or "no issue"
    built = f"; archive rebuilt {report.archive_builds} time(s)" if build_archive else ""
    click.echo(f"worker {report.name} stopped: {counts} ({issues}); system mails sent "
               f"{report.outbox.get('sent', 0)}{built}", err=True)
    for line in report.errors:
        click.echo(f"error: {line}", err=True)
    if report.errors and until_idle:
        sys.exit(1)


@contextlib.contextmanager
def _metrics(app: AppContext, port: int | None, address: str) -> Iterator[Observer | None]:
    """The Prometheus endpoint while the worker runs, and the observer that feeds it."""
    if port is None:
        yield None
        return
    from newsletter.delivery.liveness import worker_name
    from newsletter.delivery.metrics import start_metrics_server, worker_observer
    from newsletter.delivery.metrics import worker_registry as metrics_registry

    name = worker_name().rsplit(":", 1)[0]  # host:pid[:tSTART]: one label per process
    registry, metrics = metrics_registry(name, app.services.engine, app.settings.smtp.lease)
    try:
        server = start_metrics_server(port, registry, addr=address)
    except OSError as exc:
        raise ValidationError(f"--metrics-port {port}: cannot listen on {address}:{port} "
                              f"({exc.strerror or exc})") from None
    click.echo(f"metrics at http://{address}:{server.port}/metrics", err=True)
    try:
        yield worker_observer(metrics, app.settings.smtp.host)
    finally:
        server.close()


def _require_database(app: AppContext) -> None:
    """A worker started where there is neither a database URL nor the SQLite file says so,
    instead of creating an empty database in the current folder."""
    from pathlib import Path

    url = app.settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise ValidationError(f"no database at {url}: set NEWSLETTER_DATABASE_URL (or "
                              f"[database] url in a newsletter.toml) to the newsletter's "
                              f"database")


def _ago(moment: datetime, now: datetime) -> str:
    return f"{max(0.0, (now - moment).total_seconds()):.0f}s ago"


@click.command("workers")
@click.option("--stale", type=click.FloatRange(1), default=10.0, show_default=True,
              metavar="SECONDS", help="A worker silent this long counts as gone.")
@click.option("--prune", is_flag=True, help="Delete the rows of gone workers.")
@json_option
@pass_app
def workers(app: AppContext, stale: float, prune: bool, as_json: bool) -> None:
    """The running `newsletter worker` processes: host, pid, since, issue, rate.

    Then the SMTP relays a worker took out of every send, and until when.
    """
    from newsletter.db.models import utcnow

    sending = app.services.sending
    pruned = sending.prune_workers(stale) if prune else 0
    found = sending.workers(stale)
    out = sending.relays_out()
    if as_json:
        print_json({"workers": found, "pruned": pruned, "relays_out": out})
        return
    from rich.table import Table

    now = utcnow()
    table = Table("host", "pid", "since", "issue", "msg/s", "sent", "heartbeat", "state")
    for w in found:
        table.add_row(w.host, str(w.pid), f"{w.started_at:%Y-%m-%d %H:%M:%S} UTC",
                      w.issue or "-", f"{w.rate:.1f}", str(w.sent), _ago(w.heartbeat_at, now),
                      "live" if w.alive else "gone")
    if found:
        print_table(table)
    live = sum(w.alive for w in found)
    gone = f", {len(found) - live} gone (--prune deletes them)" if live < len(found) else ""
    click.echo(f"{live} live worker(s){gone}" + (f"; pruned {pruned}" if pruned else ""))
    for relay in out:  # taken out by a worker, for every worker (delivery/relayview.py)
        click.echo(f"SMTP relay {relay.name} out until {relay.until:%Y-%m-%d %H:%M:%S} UTC: "
                   f"{relay.reason}")
