"""`newsletter send` as a user runs it, against Postfix's smtp-source over reused connections.

    .venv/bin/python bench/send_bench.py [--subscribers 50000] [--runs 3] [--dkim]
        [--database sqlite|postgresql] [--workers W] [--connections C] [--tries 2]
        [--profile] [--wrap "py-spy record --subprocesses -o out --"] [--daemon N]

Seeds subscribers with bulk INSERTs (not the CLI), writes an issue in en/fr/es and starts
`smtp-sink` on a free loopback port. The message size is measured from real messages: the
issue's test copies (one per language, built exactly as the send builds them, DKIM-signed with
--dkim) go to a recording server first. Then, per run, on a new issue slug:

1. `python -m newsletter send SLUG --yes --json` in a subprocess, timed from spawn to exit
   (start-up, planning, enqueue, sending and the final bookkeeping all count); its CPU time
   comes from process accounting (getrusage(RUSAGE_CHILDREN), the workers included).
2. `smtp-source -d -s S -m N -l SIZE` to the same sink: the same number of messages, of the
   same size, over S reused sessions (`-d`: one connection carries many messages, as ours do),
   where S is the number of connections the send used (workers x connections per worker).
   It runs `--tries` times (default 2) right after the send and the fastest counts: the
   strongest form of the yardstick. The summary also gives every run's ratio against the
   fastest smtp-source of all runs, the strictest figure. On this VM one smtp-source run in
   a few crawls (1,045 msg/s at 554 µs of CPU a message, against 5,184 at 60 in the next
   run), and a single try then doubles our ratio.

With --daemon N, step 1 is `send SLUG --yes --detach` followed by N `newsletter worker
--until-idle` processes started together, timed from the send's spawn to the last worker's exit
(the sessions of smtp-source are then N x the workers' connections).

It prints both rates, the ratio, CPU per message of each client and of smtp-sink, the load
average at the start of each run, and the medians with their spread.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text  # noqa: E402

from newsletter.db.engine import make_engine  # noqa: E402
from newsletter.db.migrate import upgrade  # noqa: E402
from newsletter.db.models import MailingList, Subscriber, Subscription, utcnow  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
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


def write_workspace(ws: Path, db_url: str, port: int, connections: int | None = None,
                    dkim_key: Path | None = None, sections: int = 4) -> None:
    """Config and the issue `bench` in three languages."""
    ws.mkdir(parents=True, exist_ok=True)
    pool = f"connections = {connections}\n" if connections else ""
    dkim = (f'\n[dkim]\nkey_path = "{dkim_key}"\nselector = "bench"\ndomain = "example.org"\n'
            if dkim_key else "")
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
{pool}batch_size = 500

[send]
publish_check = false  # measures sending only: no site is served here
{dkim}""", "utf-8")
    write_issue(ws, "bench", sections)


def write_issue(ws: Path, slug: str, count: int = 4) -> None:
    """The same issue under another slug: each run sends a new issue to the whole list.
    Four sections make messages of about 25 KB, twelve about 38 KB."""
    folder = ws / "issues" / slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issue.toml").write_text(
        'list = "news"\ndate = 2026-11-20\nvolume = 9\nnumber = "11"\n', "utf-8")
    for lang, para in PARAGRAPH.items():
        sections = "\n\n".join(f"## Section {i}\n\n{para * 2}[More](https://example.org/{i})"
                               for i in range(count))
        (folder / f"{lang}.md").write_text(
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


def newsletter(ws: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "newsletter", "-w", str(ws), *args]


def message_size(ws: Path) -> int:
    """Mean size in bytes of the issue's real messages (its test copies, one per language)."""
    from aiosmtpd.controller import Controller

    sizes: list[int] = []

    class Recorder:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            sizes.append(len(envelope.original_content))
            return "250 OK"

    port = free_port()
    controller = Controller(Recorder(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        env = {**os.environ, "NEWSLETTER_SMTP_PORT": str(port)}
        subprocess.run(newsletter(ws, "send", "bench", "--test-to", "reader0@example.org"),
                       env=env, check=True, capture_output=True)
    finally:
        controller.stop()
    return round(sum(sizes) / len(sizes))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds a running process has used so far (for smtp-sink, which outlives runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    rate: float  # messages per second, wall time of the whole command
    cpu_us: float  # CPU microseconds per message of the client (process accounting)
    sink_us: float  # smtp-sink's CPU microseconds per message meanwhile


def timed(cmd: list[str], sink: int, count: int | None = None) -> tuple[Figures, str]:
    """Run cmd to completion; its figures and its output (count: messages, else from JSON)."""
    cpu0, sink0 = children_cpu(), process_cpu(sink)
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    cpu, sink_cpu = children_cpu() - cpu0, process_cpu(sink) - sink0
    if done.returncode != 0:
        print(done.stdout, done.stderr)
        raise SystemExit(1)
    if count is None:
        count = json.loads(done.stdout[done.stdout.index("{"):])["sent"]
    return Figures(count / wall, cpu / count * 1e6, sink_cpu / count * 1e6), done.stdout


def daemon_run(ws: Path, db_url: str, slug: str, workers: int, connections: int,
               sink: int) -> tuple[Figures, int]:
    """`send --detach`, then `workers` long-running workers until the queue is empty:
    the figures and the count sent."""
    cpu0, sink0 = children_cpu(), process_cpu(sink)
    started = time.perf_counter()
    subprocess.run(newsletter(ws, "send", slug, "--yes", "--detach"), check=True,
                   capture_output=True)
    procs = [subprocess.Popen(newsletter(ws, "worker", "--until-idle", "--connections",
                                         str(connections)), stderr=subprocess.PIPE)
             for _ in range(workers)]
    for proc in procs:
        _out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"worker failed: {err.decode()[-2000:]}")
    wall = time.perf_counter() - started
    cpu, sink_cpu = children_cpu() - cpu0, process_cpu(sink) - sink0
    engine = make_engine(db_url)
    with engine.connect() as conn:
        sent = conn.scalar(text("SELECT count(*) FROM deliveries d JOIN issues i ON "
                                "i.id = d.issue_id WHERE i.slug = :s AND d.status = 'sent'"),
                           {"s": slug})
    engine.dispose()
    return Figures(sent / wall, cpu / sent * 1e6, sink_cpu / sent * 1e6), sent


def smtp_source(port: int, n: int, sessions: int, size: int, sink: int) -> Figures:
    """Postfix's C client: n messages of `size` bytes over `sessions` reused connections."""
    cmd = [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(n), "-l", str(size),
           "-f", "news@example.org", "-t", "reader@example.org", f"127.0.0.1:{port}"]
    return timed(cmd, sink, count=n)[0]


def rsa_sign_us(key_path: Path, count: int = 400) -> float:
    """CPU microseconds of one RSA signature with the run's key, measured in this process
    (what a signed message cannot cost less than), min of three rounds: the machine drifts."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    digest = bytes(32)
    rounds = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(count):
            key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        rounds.append((time.process_time() - started) / count * 1e6)
    return min(rounds)


def spread(values: list[float], fmt: str = ",.0f") -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:{fmt}} ({low:{fmt}}–{high:{fmt}})"


ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def database(kind: str, tmp: Path, admin_url: str) -> tuple[str, str | None]:
    """(URL, PostgreSQL database to drop afterwards) for a fresh database."""
    if kind == "sqlite":
        return f"sqlite:///{tmp}/bench.db", None
    name = f"nl_bench_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}", name


class ServerCpu:
    """CPU seconds of the PostgreSQL backends serving one database (same host), read from /proc
    every 50 ms: a backend's last reading before it exits counts, so only the final 50 ms of a
    short-lived one can be missed. The server's shared processes (WAL writer, checkpointer)
    are not counted."""

    def __init__(self, database: str) -> None:
        self.tag = f" {database} ".encode()
        self.seen: dict[int, float] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stopped.wait(0.05):
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    cmd = Path(entry.path, "cmdline").read_bytes()
                    if cmd.startswith(b"postgres: ") and self.tag in cmd:
                        self.seen[int(entry.name)] = process_cpu(int(entry.name))
                except OSError:
                    continue

    def total(self) -> float:
        return sum(self.seen.values())

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()


def statement_stats(db_url: str, reset: bool) -> list[tuple[int, float, str]]:
    """pg_stat_statements of the bench database (calls, ms, query), if the server has it."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            if reset:
                conn.execute(text("SELECT pg_stat_statements_reset()"))
                return []
            return [tuple(r) for r in conn.execute(text(
                "SELECT calls, total_exec_time, query FROM pg_stat_statements s JOIN "
                "pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() "
                "ORDER BY total_exec_time DESC LIMIT 16"))]
    except Exception:  # not loaded (shared_preload_libraries): no statement figures
        return []
    finally:
        engine.dispose()


def drop_database(name: str, admin_url: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, help="default: what `send` picks for the machine")
    ap.add_argument("--connections", type=int, help="per worker; default: [smtp] connections")
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--sections", type=int, default=4,
                    help="sections of the issue: 4 make ~25 KB messages, 12 ~38 KB")
    ap.add_argument("--dkim", action="store_true", help="sign every message (2048-bit RSA)")
    ap.add_argument("--tries", type=int, default=2,
                    help="smtp-source runs after each send; the fastest is the yardstick")
    ap.add_argument("--profile", action="store_true", help="cProfile a 1-worker run instead")
    ap.add_argument("--wrap", default="", help="prefix for the send command, e.g. a profiler")
    ap.add_argument("--daemon", type=int, metavar="N",
                    help="send --detach, then N `newsletter worker --until-idle` processes")
    ap.add_argument("--admin-url", default=ADMIN_URL,
                    help="PostgreSQL server where the bench database is made (same host)")
    ap.add_argument("--statements", action="store_true",
                    help="print pg_stat_statements of each run (the server must preload it)")
    args = ap.parse_args()
    # `python -m newsletter` imports the package from its working folder before PYTHONPATH:
    # run every command from this tree, so that a bench run from another checkout measures
    # that checkout's code and not whatever tree the shell stood in.
    os.chdir(ROOT)

    tmp = Path(tempfile.mkdtemp(prefix="nl-bench-"))
    ws = tmp / "ws"
    db_url, pg_name = database(args.database, tmp, args.admin_url)
    dkim_key = None
    if args.dkim:
        dkim_key = tmp / "dkim.pem"
        subprocess.run(["openssl", "genrsa", "-out", str(dkim_key), "2048"], check=True,
                       capture_output=True)
    port = free_port()
    write_workspace(ws, db_url, port, args.connections, dkim_key, args.sections)
    sink = subprocess.Popen([SMTP_SINK, "-u", "nobody", f"127.0.0.1:{port}", "1000"])
    try:
        t0 = time.perf_counter()
        seed(db_url, args.subscribers)
        print(f"seeded {args.subscribers} subscribers in {time.perf_counter() - t0:.1f}s; "
              f"{args.database}, DKIM {'on' if args.dkim else 'off'}")
        size = message_size(ws)
        print(f"message size: {size} bytes (mean of the issue's real messages)")
        flags = [f for opt in ("workers", "connections") if getattr(args, opt)
                 for f in (f"--{opt}", str(getattr(args, opt)))]
        if args.profile:
            cmd = [sys.executable, "-m", "cProfile", "-s", "tottime", "-m", "newsletter",
                   "-w", str(ws), "send", "bench", "--yes", "--workers", "1"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            print("\n".join(done.stdout.splitlines()[:45]))
            return
        ours: list[Figures] = []
        theirs: list[Figures] = []
        server_us: list[float] = []
        rsa_us: list[float] = []
        for run in range(1, args.runs + 1):
            slug = f"bench{run}"
            write_issue(ws, slug, args.sections)
            load = os.getloadavg()[0]
            if args.statements:
                statement_stats(db_url, reset=True)
            server = ServerCpu(pg_name) if pg_name else None
            if args.daemon:
                conns = args.connections or 16
                mine, sent = daemon_run(ws, db_url, slug, args.daemon, conns, sink.pid)
                report = {"workers": args.daemon, "connections": conns, "sent": sent}
            else:
                cmd = args.wrap.split() + newsletter(ws, "send", slug, "--yes", "--json", *flags)
                mine, out = timed(cmd, sink.pid)
                report = json.loads(out[out.index("{"):])
            if server is not None:
                server.close()
                server_us.append(server.total() / report["sent"] * 1e6)
                print(f"run {run}: PostgreSQL backends {server_us[-1]:.0f} µs CPU/msg")
            for calls, ms, query in statement_stats(db_url, False) if args.statements else []:
                print(f"  {calls / report['sent']:7.3f}/msg {ms * 1e3 / report['sent']:6.1f} "
                      f"µs/msg  {' '.join(query.split())[:230]}")
            if dkim_key is not None:
                rsa_us.append(rsa_sign_us(dkim_key))
                print(f"run {run}: RSA-2048 signature {rsa_us[-1]:.0f} µs CPU (alone, this "
                      f"window): the rest of the sender {mine.cpu_us - rsa_us[-1]:.0f} µs/msg")
            sessions = report["workers"] * report["connections"]
            tries = [smtp_source(port, report["sent"], sessions, size, sink.pid)
                     for _ in range(args.tries)]
            source = max(tries, key=lambda t: t.rate)
            ours.append(mine)
            theirs.append(source)
            print(f"run {run} (load {load:.1f}): newsletter send {mine.rate:,.0f} msg/s "
                  f"({report['sent']} in {report['sent'] / mine.rate:.1f}s, "
                  f"{report['workers']} x {report['connections']} connections, "
                  f"{mine.cpu_us:.0f} µs CPU/msg, sink {mine.sink_us:.0f}); smtp-source -d -s "
                  f"{sessions} {source.rate:,.0f} msg/s ({source.cpu_us:.0f} µs CPU/msg, sink "
                  f"{source.sink_us:.0f}; fastest of {' / '.join(f'{t.rate:,.0f}' for t in tries)}"
                  f"); ratio {mine.rate / source.rate:.2f}")
        ratios = [m.rate / s.rate for m, s in zip(ours, theirs, strict=True)]
        print(f"newsletter send: {spread([m.rate for m in ours])} msg/s, "
              f"{spread([m.cpu_us for m in ours])} µs CPU/msg")
        print(f"smtp-source -d: {spread([s.rate for s in theirs])} msg/s, "
              f"{spread([s.cpu_us for s in theirs])} µs CPU/msg")
        print(f"ratio newsletter/smtp-source: {spread(ratios, '.2f')} (median, min–max of "
              f"{args.runs} runs)")
        best = max(s.rate for s in theirs)
        print(f"ratio against the fastest smtp-source of all runs ({best:,.0f} msg/s), the "
              f"strictest: {spread([m.rate / best for m in ours], '.2f')}")
        if rsa_us:
            print(f"RSA-2048 signature alone: {spread(rsa_us)} µs CPU")
        if server_us:
            print(f"PostgreSQL backends: {spread(server_us)} µs CPU/msg")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak RSS of the largest child process: {peak:.0f} MB")
    finally:
        sink.terminate()
        sink.wait()
        if pg_name:
            drop_database(pg_name, args.admin_url)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
