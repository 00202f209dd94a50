"""Archive benchmark: 500 sent issues x 3 languages (~20 KB web version each) in SQLite.

Usage: python bench/archive_bench.py [ISSUES] [--postgres | --database-url URL]
(--postgres creates and drops a scratch database on 127.0.0.1:5432)
Times a full build, a no-op rebuild, and a rebuild after one more issue is sent, in-process
(build_archive) and the no-op once more through the CLI (process start included).
Targets: full build <= 10 s, no-op rebuild <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mjml import mjml2html
from sqlalchemy import create_engine, insert, text

from newsletter.archive.builder import build_archive
from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.migrate import upgrade
from newsletter.db.models import Edition, Issue, MailingList

LANGS = ("en", "fr", "es")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_SCRATCH = "newsletter_archive_bench"
LEAD = {
    "en": "Civil society urges states to take seven immediate actions for refugees and migrants.",
    "fr": "La société civile appelle les États à prendre sept mesures immédiates.",
    "es": "La sociedad civil insta a los Estados a tomar siete medidas inmediatas.",
}


def shell(language: str) -> str:
    """A compiled MJML web version with placeholders, ~20 KB once filled."""
    sections = "".join(
        f"""<mj-section background-color="#ffffff"><mj-column><mj-text>
<h2>SECTION_{i}_TITLE</h2><p>PARA_{i}</p>
<p><a href="https://example.org/statement/{i}">Read more</a></p></mj-text></mj-column>
</mj-section>"""
        for i in range(12)
    )
    return mjml2html(f"""<mjml lang="{language}"><mj-head><mj-title>TITLE</mj-title>
<mj-preview>PREHEADER</mj-preview></mj-head><mj-body background-color="#f4f4f4">
<mj-section><mj-column><mj-text><h1>TITLE</h1></mj-text></mj-column></mj-section>
{sections}<mj-section><mj-column><mj-text><p><a href="https://news.example.org/manage">
Manage your subscription</a></p></mj-text></mj-column></mj-section></mj-body></mjml>""")


def fill(template: str, language: str, n: int) -> str:
    html = template.replace("TITLE", f"Issue {n} ({language})").replace("PREHEADER", LEAD[language])
    for i in range(12):
        html = html.replace(f"SECTION_{i}_TITLE", f"Section {i} of issue {n}")
        html = html.replace(f"PARA_{i}", (LEAD[language] + " ") * 6)
    return html


def populate(url: str, issues: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    shells = {lang: shell(lang) for lang in LANGS}
    start = datetime(2016, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        list_id = conn.execute(insert(MailingList).values(
            slug="news", name="Network News", default_language="en", languages=list(LANGS),
        ).returning(MailingList.id)).scalar_one()
        for n in range(issues):
            sent = start + timedelta(days=7 * n)
            issue_id = conn.execute(insert(Issue).values(
                slug=f"issue-{n:04d}", list_id=list_id, status="sent", sent_at=sent, data={},
            ).returning(Issue.id)).scalar_one()
            conn.execute(insert(Edition), [
                {"issue_id": issue_id, "language": lang, "subject": f"Issue {n}",
                 "title": f"Issue {n} ({lang})", "preheader": LEAD[lang],
                 "issue_date": sent.date().isoformat(), "volume": str(sent.year - 1995),
                 "number": f"{n % 52 + 1:02d}", "web_html": fill(shells[lang], lang, n),
                 "text": "", "content_hash": "", "sent_at": sent, "data": {}}
                for lang in LANGS
            ])
    engine.dispose()


def timed(label: str, settings, engine, out: Path, **kwargs) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    report = build_archive(settings=settings, engine=engine, out=out, **kwargs)
    elapsed = time.perf_counter() - t0
    print(f"{label:<28} {elapsed:6.2f} s  pages={report.pages} written={report.written} "
          f"unchanged={report.unchanged} removed={report.removed}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("issues", nargs="?", type=int, default=500)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    if args.postgres:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {PG_SCRATCH} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {PG_SCRATCH}"))
        args.database_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_SCRATCH
        try:
            run(args)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {PG_SCRATCH} WITH (FORCE)"))
            admin.dispose()
    else:
        run(args)


def run(args: argparse.Namespace) -> None:
    print(f"database: {'PostgreSQL' if args.database_url else 'SQLite'}")
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        url = args.database_url or f"sqlite:///{ws / 'newsletter.db'}"
        (ws / "newsletter.toml").write_text(
            f'[newsletter]\nname = "Network News"\nbase_url = "https://news.example.org"\n'
            f'[database]\nurl = "{url}"\n', encoding="utf-8")
        t0 = time.perf_counter()
        populate(url, args.issues)
        print(f"generated {args.issues} issues x {len(LANGS)} languages "
              f"in {time.perf_counter() - t0:.1f} s")
        settings = load_settings(ws)
        engine = make_engine(settings.database_url)
        out = ws / "site"
        full = timed("full build (--clean)", settings, engine, out, clean=True)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"site: {sum(1 for _ in out.rglob('*.html'))} HTML files, {size / 1e6:.0f} MB")
        noop = min(timed("no-op rebuild", settings, engine, out) for _ in range(3))
        populate_one = make_engine(settings.database_url)
        with populate_one.begin() as conn:
            issue_id = conn.execute(insert(Issue).values(
                slug="issue-new", list_id=1, status="sent", sent_at=datetime.now(UTC), data={},
            ).returning(Issue.id)).scalar_one()
            conn.execute(insert(Edition).values(
                issue_id=issue_id, language="fr", subject="New", title="Nouveau numéro",
                preheader="", issue_date="2026-11-20", web_html="<p>Bonjour</p>",
                sent_at=datetime.now(UTC) - timedelta(minutes=1), data={}))
        populate_one.dispose()
        timed("rebuild after one new issue", settings, engine, out)
        engine.dispose()
        exe = str(Path(sys.executable).with_name("newsletter"))
        t0 = time.perf_counter()
        result = subprocess.run([exe, "-w", str(ws), "archive", "build", "--json"],
                                check=True, capture_output=True, text=True)
        cli = time.perf_counter() - t0
        print(f"{'no-op rebuild via CLI':<28} {cli:6.2f} s  "
              f"written={json.loads(result.stdout)['written']} (process start included)")
        print(f"targets: full <= 10 s ({'met' if full <= 10 else 'MISSED'}), "
              f"no-op <= 1 s ({'met' if noop <= 1 else 'MISSED'})")


if __name__ == "__main__":
    main()
