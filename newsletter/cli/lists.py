"""`newsletter lists`: define and inspect mailing lists."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.table import Table

from newsletter.audience.language import parse_languages
from newsletter.audience.listedits import ListUpdate
from newsletter.cli.context import AppContext, json_option, pass_app, print_json, print_table


@click.group("lists")
def lists() -> None:
    """Mailing lists: add, list, show, update, rename, delete, sync from subscribers/lists.toml."""


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
    info = app.services.lists.add(slug, name=name, languages=langs,
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
    infos = app.services.lists.all()
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
    print_table(table)


@lists.command("show")
@click.argument("slug")
@json_option
@pass_app
def show(app: AppContext, slug: str, as_json: bool) -> None:
    """Show one list."""
    info = app.services.lists.get(slug)
    if as_json:
        print_json(asdict(info))
        return
    click.echo(f"{info.slug}: {info.name}")
    click.echo(f"  languages: {', '.join(info.languages)} (default {info.default_language})")
    click.echo(f"  opt-in: {info.opt_in}; {'public' if info.public else 'private'}")
    for status, n in info.counts.items():
        click.echo(f"  {status}: {n}")


def _show_changes(slug: str, changes: dict) -> None:
    for key, (old, new) in changes.items():
        if isinstance(old, list):
            old, new = ",".join(old), ",".join(new)
        click.echo(f"{slug}: {key.replace('_', ' ')} {old!r} -> {new!r}")


@lists.command("update")
@click.argument("slug")
@click.option("--name", help="New display name.")
@click.option("--description", help="New one-line description.")
@click.option("--languages", help="The languages offered from now on: en,fr,es")
@click.option("--default-language", help="New fallback language (one of the languages).")
@click.option("--force", is_flag=True,
              help="Remove a language even though subscribers read it (they will then get the "
                   "list's default language).")
@pass_app
def update(app: AppContext, slug: str, name: str | None, description: str | None,
           languages: str | None, default_language: str | None, force: bool) -> None:
    """Change the name, description or languages of the list SLUG."""
    wanted = ListUpdate(name=name, description=description,
                        languages=parse_languages(languages) if languages is not None else None,
                        default_language=default_language)
    changes = app.services.lists.update(slug, wanted, force=force)
    if not changes:
        click.echo(f"list {slug!r}: nothing to change")
    _show_changes(slug, changes)


def _issues_naming(app: AppContext, slug: str) -> list[str]:
    """Issue folders whose issue.toml names the list `slug`."""
    import tomllib

    found = []
    for path in sorted(app.settings.path("issues").glob("*/issue.toml")):
        try:
            if tomllib.loads(path.read_text(encoding="utf-8")).get("list") == slug:
                found.append(path.parent.name)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # `issue check` reports a broken file; here it only cannot be listed
    return found


@lists.command("rename")
@click.argument("old")
@click.argument("new")
@pass_app
def rename(app: AppContext, old: str, new: str) -> None:
    """Change the slug of a list from OLD to NEW."""
    app.services.lists.rename(old, new)
    click.echo(f"list {old!r} is now {new!r}")
    click.echo(f"warning: the List-Id header of its mails changes from <{old}.…> to <{new}.…>; "
               "subscribers who filter on it must update their filters", err=True)
    click.echo(f"warning: the subscribe form moves from /subscribe/{old} to /subscribe/{new}: "
               "update the pages that link to it (confirmation and unsubscribe links keep "
               "working)", err=True)
    issues = _issues_naming(app, old)
    if issues:
        click.echo(f"warning: set list = \"{new}\" in issue.toml of: {', '.join(issues)}",
                   err=True)
    click.echo(f"warning: rename it in subscribers/lists.toml too, or `lists sync` will create "
               f"{old!r} again", err=True)


@lists.command("delete")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def delete(app: AppContext, slug: str, yes: bool) -> None:
    """Delete the list SLUG, its subscriptions and issue records (refused while sending)."""
    info = app.services.lists.get(slug)
    total = sum(info.counts.values())
    issues = app.services.lists.count_issues(info.id)
    sent = (f" and {issues} issue(s), whose editions leave the public archive at its next "
            "build" if issues else "")
    if not yes and not click.confirm(f"Delete list {slug!r} ({info.name}) with its {total} "
                                     f"subscription(s){sent}?", default=False):
        raise click.ClickException("nothing deleted")
    report = app.services.lists.delete(slug)
    click.echo(f"list {slug!r} deleted: {report.subscriptions} subscriptions, {report.issues} "
               f"issue records, {report.deliveries} deliveries; subscribers and the suppression "
               "list are kept")


@lists.command("sync")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--force", is_flag=True,
              help="Remove languages even though subscribers read them.")
@pass_app
def sync(app: AppContext, dry_run: bool, force: bool) -> None:
    """Create the lists of subscribers/lists.toml and apply its changes to existing ones."""
    path = app.settings.path("subscribers/lists.toml")
    if not path.exists():
        raise click.ClickException(f"{path}: no such file")
    report = app.services.lists.sync(path, dry_run=dry_run, force=force)
    verb = "would be " if dry_run else ""
    if report.created:
        click.echo(f"{verb}created: {', '.join(report.created)}")
    for slug, changes in report.changed.items():
        _show_changes(slug, changes)
    if not report.created and not report.changed:
        click.echo("every list already matches lists.toml")
    elif dry_run:
        click.echo("dry run: nothing was changed")
