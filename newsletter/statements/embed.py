"""What `{{ statement("slug") }}` in an issue shows: the statement's count of approved
signatories at compile time and a button to its form, in the edition's language.

The composer reaches the statements through here (`embedder`), never through the archive.
The count is read from the database named by the settings, once per placeholder.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from newsletter.compose.blocks import Embed, Embedded
from newsletter.config import Settings
from newsletter.db.engine import make_engine
from newsletter.db.models import utcnow
from newsletter.errors import NotFoundError
from newsletter.i18n import translations
from newsletter.links import sign_url
from newsletter.statements.source import FOLDER, folder, load_statement


def statement_link(settings: Settings, slug: str, language: str) -> tuple[str, int | None]:
    """The form's URL in `language` ("" once the statement is closed) and the count of
    organisations whose signatures are approved (None when the database cannot tell: not
    reachable, or not upgraded yet, as for `issue check` in a new workspace); NotFoundError for
    an unknown statement or one without that language."""
    if not (folder(settings.workspace, slug) / f"{language}.md").is_file():
        raise NotFoundError(f"statement {slug!r} has no {language} text "
                            f"({FOLDER}/{slug}/{language}.md)")
    statement = load_statement(settings.workspace, slug)  # a broken one cannot be signed
    # Here, not above: the statements' database code imports the signing code (e-mail
    # validation, opt-in, outbox), which an issue without a statement never needs.
    from newsletter.statements.moderation import approved_count

    engine = make_engine(settings.database_url)
    count: int | None
    try:
        count = approved_count(engine, slug)
    except SQLAlchemyError:  # the button alone; a send cannot happen without the database
        count = None
    finally:
        engine.dispose()
    if utcnow() >= statement.closes_at:
        return "", count
    return f"{sign_url(settings.newsletter.base_url, slug)}?lang={language}", count


def embedder(settings: Settings, language: str, counts: list[str]) -> Embed:
    """The compiler's `Embed` for one language; each count's words are added to `counts`
    (the edition's content hash leaves them out, so a new signatory is no change of text)."""
    catalog = translations(language, "email")

    def embed(slug: str) -> Embedded:
        url, count = statement_link(settings, slug, language)
        words = "" if count is None else catalog.gettext(
            "Organisations that have signed: %(count)s") % {"count": count}
        if words:
            counts.append(words)
        if not url:
            return Embedded(words, catalog.gettext("This statement is closed."), "")
        return Embedded(words, catalog.gettext("Sign the statement"), url)

    return embed
