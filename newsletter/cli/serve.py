"""`newsletter serve`: run the subscriber web app under uvicorn, outbox worker included."""

from __future__ import annotations

from typing import Any

import click

from newsletter.cli.context import AppContext, pass_app


@click.command("serve")
@click.option("--host", help="Address to listen on (default: [web] host).")
@click.option("--port", type=int, help="Port to listen on (default: [web] port).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes; use PostgreSQL when running more than one.",
)
@click.option(
    "--outbox/--no-outbox",
    default=True,
    show_default=True,
    help="Send queued confirmation mails from inside the app.",
)
@click.option(
    "--loop",
    type=click.Choice(["asyncio", "uvloop", "auto"]),
    default="asyncio",
    show_default=True,
    help="Event loop (asyncio keeps tail latency low under load).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@pass_app
def serve(
    app: AppContext,
    host: str | None,
    port: int | None,
    workers: int,
    outbox: bool,
    loop: str,
    log_level: str,
) -> None:
    """Serve subscribe, confirm, preferences and one-click unsubscribe pages."""
    from newsletter.web import AppFactory, create_app
    from newsletter.web.server import run

    settings = app.settings
    app.services.require_schema()
    host = host or settings.web.host
    port = port or settings.web.port
    if workers > 1 and app.services.on_sqlite:
        click.echo("note: workers share one SQLite file; PostgreSQL scales better", err=True)
    click.echo(
        f"serving {settings.newsletter.base_url} on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''})",
        err=True,
    )
    options: dict[str, Any] = {"host": host, "port": port, "loop": loop, "log_level": log_level}
    outbox_worker = None if outbox else False
    if workers == 1:
        run(create_app(app.services, outbox_worker=outbox_worker), **options)
        return
    # Each worker process gets the settings (pickled) and builds its own services and app.
    run(AppFactory(settings, outbox_worker), workers=workers, factory=True, **options)
