"""End-to-end `newsletter send` to Postfix smtp-sink, against smtp-source in the same run.

    .venv/bin/python bench/send_bench.py [--subscribers 100000] [--workers 2] [--connections 8]
                                         [--database sqlite|postgresql] [--profile]
                                         [--wrap "py-spy record --subprocesses -o out --"]

Seeds subscribers with bulk INSERTs (not the CLI), writes a ~20 KB issue in en/fr/es, starts
smtp-sink on a free loopback port, times smtp-source pushing the same number of messages of the
same size, then times `python -m newsletter send` (every message personalized, DKIM off, every
result recorded), and prints msg/s for both and the ratio. Peak RSS of the sender processes is
printed too (max over the workers).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text  # noqa: E402

from newsletter.db.engine import make_engine  # noqa: E402
from newsletter.db.migrate import upgrade  # noqa: E402
from newsletter.db.models import MailingList, Subscriber, Subscription, utcnow  # noqa: E402

PARAGRAPH = {
    "en": "The coalition met in Bangkok to agree on shared priorities for the regional review: "
          "access to justice for migrant workers, an end to child detention and portable social "
          "protection. Read the statement and sign it before the deadline. ",
    "fr": "La coalition s'est réunie à Bangkok pour convenir de priorités communes pour "
          "l'examen régional : accès à la justice, fin de la détention des enfants et protection "
          "sociale transférable. Lisez la déclaration et signez-la avant la date limite. ",
    "es": "La coalición se reunió en Bangkok para acordar prioridades comunes para la revisión "
          "regional: acceso a la justicia, fin de la detención de niños y protección social "
          "transferible. Lea la declaración y fírmela antes de la fecha límite. ",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_workspace(ws: Path, db_url: str, port: int, connections: int) -> None:
    """Config and a ~20 KB (as sent) issue in three languages."""
    (ws / "issues" / "bench").mkdir(parents=True)
    (ws / "newsletter.toml").write_text(f"""[newsletter]
name = "Bench News"
base_url = "https://news.example.org"
from_address = "news@example.org"
secret_key = "bench-secret-key-0123456789"

[database]
url = "{db_url}"

[smtp]
host = "127.0.0.1"
port = {port}
connections = {connections}
batch_size = 500

[send]
publish_check = false  # measures sending only: no site is served here
""", "utf-8")
    (ws / "issues" / "bench" / "issue.toml").write_text(
        'list = "news"\ndate = 2026-11-20\nvolume = 9\nnumber = "11"\n', "utf-8")
    for lang, para in PARAGRAPH.items():
        sections = "\n\n".join(f"## Section {i}\n\n{para * 2}[More](https://example.org/{i})"
                               for i in range(4))
        (ws / "issues" / "bench" / f"{lang}.md").write_text(
            f'+++\nsubject = "Coalition news for November, {lang}"\n'
            f'preheader = "A statement open for signature, the Bangkok meeting and dates."\n'
            f'+++\n\nHello {{{{ name | default("friend") }}}},\n\n{sections}\n', "utf-8")


def seed(db_url: str, n: int) -> None:
    """Bulk-insert n confirmed subscribers, a third per language."""
    engine = make_engine(db_url)
    upgrade(engine)
    now = utcnow()
    langs = ("en", "fr", "es")
    with engine.begin() as conn:
        list_id = conn.execute(insert(MailingList).values(
            slug="news", name="Bench News", default_language="en", languages=list(langs),
            opt_in="double", public=True, description="", created_at=now)
            .returning(MailingList.id)).scalar_one()
    chunk = 20000
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        with engine.begin() as conn:
            conn.execute(insert(Subscriber), [
                {"id": i + 1, "email": f"reader{i}@example.org", "name": f"Reader {i}",
                 "language": langs[i % 3], "attributes": {}, "created_at": now,
                 "updated_at": now} for i in range(start, stop)])
            conn.execute(insert(Subscription), [
                {"subscriber_id": i + 1, "list_id": list_id, "status": "confirmed",
                 "created_at": now, "confirmed_at": now, "updated_at": now}
                for i in range(start, stop)])
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT setval('subscribers_id_seq', :n)"), {"n": n})
    engine.dispose()


def smtp_source(port: int, n: int, sessions: int, size: int) -> float:
    """msg/s of Postfix's C client pushing n messages of `size` bytes over reused sessions."""
    started = time.perf_counter()
    subprocess.run(["/usr/sbin/smtp-source", "-s", str(sessions), "-m", str(n), "-l", str(size),
                    "-f", "news@example.org", "-t", "reader@example.org",
                    f"127.0.0.1:{port}"], check=True)
    return n / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--profile", action="store_true", help="cProfile a 1-worker run instead")
    ap.add_argument("--skip-source", action="store_true")
    ap.add_argument("--wrap", default="", help="prefix for the send command, e.g. a profiler")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="nl-bench-"))
    ws = tmp / "ws"
    if args.database == "sqlite":
        db_url = f"sqlite:///{tmp}/bench.db"
    else:
        name = f"nl_bench_{os.getpid()}"
        admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    port = free_port()
    write_workspace(ws, db_url, port, args.connections)
    t0 = time.perf_counter()
    seed(db_url, args.subscribers)
    print(f"seeded {args.subscribers} subscribers in {time.perf_counter() - t0:.1f}s")

    dry = subprocess.run([sys.executable, "-m", "newsletter", "-w", str(ws), "send", "bench",
                          "--dry-run", "--json"], capture_output=True, text=True, check=True)
    report = json.loads(dry.stdout)
    size = report["total_bytes"] // max(1, sum(report["messages"].values()))
    print(f"message size: {size} bytes on average ({report['smallest']}..{report['largest']})")

    sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1000"])
    time.sleep(0.3)
    try:
        sessions = args.connections * args.workers
        source_rate = 0.0
        if not args.skip_source:
            source_rate = smtp_source(port, args.subscribers, sessions, size)
            print(f"smtp-source: {source_rate:,.0f} msg/s ({sessions} sessions, {size} bytes)")
        cmd = [sys.executable, "-m", "newsletter", "-w", str(ws), "send", "bench", "--yes",
               "--json", "--workers", str(args.workers)]
        if args.profile:
            cmd = [sys.executable, "-m", "cProfile", "-s", "tottime", "-m", "newsletter",
                   *cmd[3:-2], "--workers", "1"]
        cmd = args.wrap.split() + cmd
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if args.profile:
            print("\n".join(done.stdout.splitlines()[:45]))
            return
        if done.returncode != 0:
            print(done.stdout, done.stderr)
            raise SystemExit(1)
        result = json.loads(done.stdout[done.stdout.index("{"):])
        rate = result["sent"] / result["seconds"]
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"newsletter send: {result['sent']} sent in {result['seconds']:.1f}s "
              f"(wall {wall:.1f}s with start-up): {rate:,.0f} msg/s, "
              f"workers={args.workers} connections={args.connections}/worker")
        print(f"peak RSS of the largest child process: {peak:.0f} MB")
        if source_rate:
            print(f"ratio newsletter/smtp-source: {rate / source_rate:.2f}")
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
