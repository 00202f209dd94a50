"""`newsletter doctor`: check the sending set-up and say how to fix what is wrong."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.text import Text

from newsletter.cli.context import AppContext, json_option, pass_app, print_json
from newsletter.doctor import CheckResult, run_doctor
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.delivery.relayview import RelayOut

STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red"}


@click.command("doctor")
@click.option("--resolver", metavar="HOST:PORT", default="",
              help="DNS server to ask (default: [doctor] nameserver, else the system's).")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=None,
              help="Seconds for each network step (default: [doctor] timeout).")
@json_option
@pass_app
def doctor(app: AppContext, resolver: str, timeout: float | None, as_json: bool) -> None:
    """Check SPF, DKIM, DMARC, MX, PTR, the SMTP relay and the public URLs."""
    results = run_doctor(app.settings, nameserver=resolver, timeout=timeout,
                         relays_out=_relays_out(app))
    counts = Counter(r.status for r in results)
    summary = {status: counts.get(status, 0) for status in ("ok", "warn", "fail")}
    if as_json:
        print_json({"checks": [asdict(r) for r in results], "summary": summary})
    else:
        _render(results, summary)
    if summary["fail"]:
        click.get_current_context().exit(1)


def _relays_out(app: AppContext) -> list[RelayOut]:
    """The relays out of the sends in the shared view; none without `[[smtp.relays]]` or when
    there is no database here to ask (the doctor also runs on a host without one)."""
    if not app.settings.smtp.relays:
        return []
    from sqlalchemy.exc import SQLAlchemyError

    from newsletter.cli.worker import _require_database

    try:
        _require_database(app)  # never creates an empty SQLite file
        return app.services.sending.relays_out()
    except (NewsletterError, SQLAlchemyError):
        return []


def _render(results: tuple[CheckResult, ...], summary: dict[str, int]) -> None:
    # Rich colours only when writing to a terminal; piped output stays plain text.
    console = Console(highlight=False, soft_wrap=True)
    width = max(len(r.name) for r in results)
    for r in results:
        line = Text(f"{r.status:<4} ", style=STYLES[r.status])
        line.append(f"{r.name:<{width}}  {r.detail}")
        console.print(line)
        if r.fix:
            console.print(Text(f"     {'':<{width}}  fix: {r.fix}"))
    console.print(f"{summary['ok']} ok, {summary['warn']} warn, {summary['fail']} fail")
