"""Helpers for the tests of `newsletter worker`: each worker is a separate process started in
an empty folder (no newsletter.toml, no issues/), given only the environment a worker host has:
the database URL, the secret key and the SMTP settings (and, for the schedule, the test clock).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select, text

from newsletter.db.engine import make_engine
from newsletter.db.models import Delivery, Issue
from tests.conftest import SECRET, clean_env


def worker_env(db_url: str, smtp_port: int, **extra: object) -> dict[str, str]:
    """The environment of a worker host: none of the test runner's NEWSLETTER_* variables."""
    env = clean_env(NEWSLETTER_DATABASE_URL=db_url, NEWSLETTER_SECRET_KEY=SECRET,
                    NEWSLETTER_SMTP_HOST="127.0.0.1", NEWSLETTER_SMTP_PORT=str(smtp_port),
                    NEWSLETTER_SMTP_TIMEOUT="5", NEWSLETTER_SMTP_RETRY_DELAY="0.05")
    env.update({f"NEWSLETTER_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class Workers:
    """Start `python -m newsletter worker` processes, each in an empty folder of its own."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        folder = self.root / f"host{len(self.procs)}"
        folder.mkdir(parents=True)
        log = (self.root / f"host{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "newsletter", "worker", *args],
                                cwd=folder, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        assert not any(folder.iterdir())
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        """What a worker printed (once it exited)."""
        return (self.root / f"host{self.procs.index(proc)}.log").read_text("utf-8", "replace")

    def outputs(self) -> str:
        return "\n".join(f"--- worker {p.pid}:\n{self.output(p)}" for p in self.procs)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until(check: Callable[[], object], timeout: float, what: str,
               every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def query(db_url: str, sql: str, **params: object) -> list[tuple]:
    """Rows of one SQL statement, committed (an UPDATE ... RETURNING changes the database)."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def issue_status(db_url: str, slug: str = "nov") -> str | None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        found = conn.scalar(select(Issue.status).where(Issue.slug == slug))
    engine.dispose()
    return found


def counts(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        found = {s: n for s, n in rows}
    engine.dispose()
    return found


def live_workers(db_url: str) -> int:
    return query(db_url, "SELECT count(*) FROM workers")[0][0]


SMALL_LAYOUT = """<mjml lang="{{ lang }}">
  <mj-head><mj-title>{{ subject }}</mj-title><mj-preview>{{ preheader }}</mj-preview></mj-head>
  <mj-body width="600px"><mj-section><mj-column><mj-text>
    <h1>{{ title }}</h1>
    <a href="{{ slots.preferences_url }}">prefs</a> <a href="{{ slots.unsubscribe_url }}">out</a>
  </mj-text></mj-column></mj-section></mj-body>
</mjml>
"""


def small_layout(workspace: Path) -> None:
    """A one-paragraph email layout: thousands of small messages for the tests of scale."""
    path = workspace / "templates" / "email" / "base.mjml.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SMALL_LAYOUT, "utf-8")
