"""Peak memory of `newsletter bounces serve` while 12 large reports arrive at once.

    .venv/bin/python bench/bounce_memory_bench.py [--reports 12] [--mb 24]

Starts the receiver as a subprocess on a fresh SQLite workspace, then 12 SMTP clients send a
24 MB DSN each (the returned original carries a 24 MB base64 attachment) in parallel. Prints
each reply, the wall time, and the peak RSS (VmHWM) of the receiver and of its parse worker.
With PYTHONPATH pointing at another checkout, it measures that code instead.
"""

from __future__ import annotations

import argparse
import base64
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report(number: int, megabytes: int) -> bytes:
    """A DSN whose returned original has a `megabytes` MB attachment."""
    blob = base64.encodebytes(os.urandom(megabytes * 1024 * 1024 * 3 // 4))
    return (f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: bounces@bounces.example.org
Subject: Undelivered Mail Returned to Sender
Message-ID: <bench-{number}@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="R"

--R
Content-Type: text/plain

Your message could not be delivered.

--R
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; reader{number}@example.net
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--R
Content-Type: message/rfc822

Return-Path: <bounces+x@bounces.example.org>
From: news@example.org
To: reader{number}@example.net
Subject: News
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="M"

--M
Content-Type: text/plain

Hello
--M
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

""".replace("\n", "\r\n").encode() + blob.replace(b"\n", b"\r\n") + b"\r\n--M--\r\n--R--\r\n")


def peak_kb(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def send(port: int, data: bytes, replies: list[str]) -> None:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
            client.ehlo()
            client.mail("")
            client.rcpt("bounces@bounces.example.org")
            code, text = client.data(data)
        replies.append(f"{code} {text.decode(errors='replace')[:60]}")
    except (OSError, smtplib.SMTPException) as exc:
        replies.append(f"error {exc}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=12)
    parser.add_argument("--mb", type=int, default=24)
    args = parser.parse_args()
    reports = [report(n, args.mb) for n in range(args.reports)]
    with tempfile.TemporaryDirectory(prefix="nl-bounce-mem-") as tmp:
        ws, port = Path(tmp), free_port()
        (ws / "newsletter.toml").write_text(f"""[newsletter]
name = "Bench"
base_url = "https://news.example.org"
from_address = "news@example.org"
secret_key = "bench-secret-key-0123456789"

[database]
url = "sqlite:///{ws}/bench.db"
""", "utf-8")
        subprocess.run([sys.executable, "-m", "newsletter", "-w", str(ws), "db", "upgrade"],
                       check=True, capture_output=True)
        server = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "-w", str(ws), "bounces", "serve", "--port",
             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            base = peak_kb(server.pid)
            replies: list[str] = []
            start = time.perf_counter()
            threads = [threading.Thread(target=send, args=(port, data, replies))
                       for data in reports]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - start
            receiver = peak_kb(server.pid)
            worker = sum(peak_kb(pid) for pid in children(server.pid))
        finally:
            server.terminate()
            server.wait(30)
    for reply in sorted(set(replies)):
        print(f"{replies.count(reply):>3} x {reply}")
    print(f"{args.reports} reports of {len(reports[0]) / 1e6:.1f} MB in {seconds:.1f} s; "
          f"peak RSS: receiver {receiver / 1024:.0f} MB (idle {base / 1024:.0f} MB), "
          f"parse worker {worker / 1024:.0f} MB, total {(receiver + worker) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
