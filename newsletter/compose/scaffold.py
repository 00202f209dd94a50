"""`newsletter issue new`: a skeleton issue folder editors fill in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from newsletter.audience.lists import SLUG as LIST_SLUG
from newsletter.compose.errors import ComposeError
from newsletter.compose.source import LANGUAGE_RE, SLUG_RE, toml_string
from newsletter.i18n import translations

ISSUE_TOML = """\
# Shared by every language of this issue; a language file's front matter overrides these keys.
list = {list_slug}
date = {date}
# volume = 1
# number = "01"
# template = "email/base.mjml.j2"   # a layout under templates/ (see templates/README.md)
# allow_raw_html = false            # true skips sanitizing raw HTML in the Markdown
"""

EDITION = """\
+++
title = "{title}"
subject = "{subject}"
preheader = "{preheader}"
+++

{intro}

![{alt}](image.png)

## {title}

{intro}

[{more}](https://example.org/){{.button}}
"""


def new_issue(
    workspace: Path, slug: str, languages: Sequence[str], list_slug: str, today: dt.date,
) -> list[Path]:
    """Write issues/<slug>/issue.toml and one Markdown file per language; never overwrite."""
    if not SLUG_RE.fullmatch(slug):
        raise ComposeError(f"invalid issue slug {slug!r}: use lowercase letters, digits, . _ -")
    if not LIST_SLUG.fullmatch(list_slug):
        raise ComposeError(f"invalid list slug {list_slug!r}: use lowercase letters, digits "
                           "and dashes (at most 63), as in `newsletter lists add`")
    bad = [lang for lang in languages if not LANGUAGE_RE.fullmatch(lang)]
    if bad or not languages:
        raise ComposeError(f"invalid language code(s): {', '.join(bad) or '(none)'}")
    folder = Path(workspace) / "issues" / slug
    if folder.exists():
        raise ComposeError(f"issues/{slug}/ already exists")
    folder.mkdir(parents=True)
    written = [folder / "issue.toml"]
    issue_toml = ISSUE_TOML.format(list_slug=toml_string(list_slug), date=today.isoformat())
    written[0].write_text(issue_toml, encoding="utf-8")
    for lang in languages:
        _ = translations(lang, "email").gettext
        path = folder / f"{lang}.md"
        path.write_text(EDITION.format(
            title=_("Title of the issue"), subject=_("Subject line of the email"),
            preheader=_("One sentence shown after the subject in the inbox."),
            intro=_("Write the introduction here."),
            alt=_("Describe the image for readers who cannot see it"), more=_("Read more"),
        ), encoding="utf-8")
        written.append(path)
    return written
