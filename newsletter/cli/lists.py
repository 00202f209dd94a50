"""`newsletter lists`: define and inspect mailing lists."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.console import Console
from rich.table import Table

from newsletter.audience.lists import add_list, all_lists, get_list, parse_languages, sync_lists
from newsletter.cli.context import AppContext, json_option, pass_app, print_json


@click.group("lists")
def lists() -> None:
    """Mailing lists: add, list, show, sync from subscribers/lists.toml."""


@lists.command("add")
@click.argument("slug")
@click.option("--name", required=True, help="Display name, used in List-Id and pages.")
@click.option("--languages", default="en", show_default=True, help="Offered languages: en,fr,es")
@click.option("--default-language", help="Fallback language (default: the first one).")
@click.option("--single-opt-in", is_flag=True, help="Confirm at once, without a confirmation mail.")
@click.option("--private", is_flag=True, help="Hide from the public preferences page.")
@click.option("--description", default="", help="One line shown on the subscribe form.")
@pass_app
def add(app: AppContext, slug: str, name: str, languages: str, default_language: str | None,
        single_opt_in: bool, private: bool, description: str) -> None:
    """Create the list SLUG."""
    langs = parse_languages(languages)
    info = add_list(app.services.engine, slug=slug, name=name, languages=langs,
                    default_language=default_language or langs[0],
                    double_opt_in=not single_opt_in, public=not private,
                    description=description)
    click.echo(f"list {info.slug!r} created ({', '.join(info.languages)}; "
               f"default {info.default_language}; {info.opt_in} opt-in)")


@lists.command("list")
@json_option
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """Show every list with its subscriber counts."""
    infos = all_lists(app.services.engine)
    if as_json:
        print_json([asdict(i) for i in infos])
        return
    if not infos:
        click.echo("no lists yet: add one with `newsletter lists add SLUG --name ...`")
        return
    table = Table("slug", "name", "languages", "default", "opt-in", "public",
                  "confirmed", "pending", "unsubscribed")
    for i in infos:
        table.add_row(i.slug, i.name, ",".join(i.languages), i.default_language, i.opt_in,
                      "yes" if i.public else "no", *(str(i.counts[s]) for s in
                                                     ("confirmed", "pending", "unsubscribed")))
    Console().print(table)


@lists.command("show")
@click.argument("slug")
@json_option
@pass_app
def show(app: AppContext, slug: str, as_json: bool) -> None:
    """Show one list."""
    info = get_list(app.services.engine, slug)
    if as_json:
        print_json(asdict(info))
        return
    click.echo(f"{info.slug}: {info.name}")
    click.echo(f"  languages: {', '.join(info.languages)} (default {info.default_language})")
    click.echo(f"  opt-in: {info.opt_in}; {'public' if info.public else 'private'}")
    for status, n in info.counts.items():
        click.echo(f"  {status}: {n}")


@lists.command("sync")
@pass_app
def sync(app: AppContext) -> None:
    """Create the lists defined in subscribers/lists.toml that do not exist yet."""
    path = app.settings.path("subscribers/lists.toml")
    if not path.exists():
        raise click.ClickException(f"{path}: no such file")
    created = sync_lists(app.services.engine, path)
    click.echo(f"created: {', '.join(created)}" if created else "all lists already exist")


def attach(cli: click.Group) -> None:
    cli.add_command(lists)
