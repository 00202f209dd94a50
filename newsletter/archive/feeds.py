"""Atom feed per language (feedgen), with each issue's full content.

Every date in a feed comes from the issues themselves, never from the clock, so building twice
gives the same bytes and the writer leaves the file alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from newsletter.archive.plan import PagePlan


def render_feed(page: PagePlan, content_of: Callable[[Mapping[str, Any]], str]) -> bytes:
    """Atom bytes for a planned feed; content_of(entry) gives an entry's full HTML."""
    # Imported here: feedgen brings lxml and dateutil, which a build with nothing to write
    # (every feed up to date) does without.
    from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]

    ctx = page.context
    fg = FeedGenerator()
    fg.id(ctx["url"])
    fg.title(ctx["title"])
    fg.author({"name": ctx["author"]})
    fg.link(href=ctx["url"], rel="alternate", type="text/html")
    fg.link(href=ctx["self_url"], rel="self", type="application/atom+xml")
    fg.language(ctx["lang"])
    fg.generator("newsletter")
    entries = ctx["entries"]
    fg.updated(max((datetime.fromisoformat(e["sent_at"]) for e in entries), default=None)
               or datetime.fromisoformat("2000-01-01T00:00:00+00:00"))
    for entry in entries:
        sent = datetime.fromisoformat(entry["sent_at"])
        fe = fg.add_entry(order="append")
        fe.id(entry["url"])
        fe.title(entry["title"])
        fe.link(href=entry["url"], rel="alternate", type="text/html")
        fe.published(sent)
        fe.updated(sent)
        if entry["preheader"]:
            fe.summary(entry["preheader"])
        fe.content(content_of(entry), type="html")
    return fg.atom_str(pretty=True)
