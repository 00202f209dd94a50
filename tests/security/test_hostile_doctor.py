"""Hostile DNS answers for `newsletter doctor`: the right check fails or warns, with its fix.

Each file in tests/data/hostile/doctor/ replaces some records of a well set-up domain (see
the README there). Include and redirect loops stop at RFC 7208's 10 look-ups; junk keys,
bytes and policies are reported, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from tests.conftest import drop_newsletter_env
from tests.doctor.conftest import (  # noqa: F401 - fixtures
    dkim_keys,
    dns_server,
    smtp_server,
    smtp_server_factory,
    web_site,
    zone,
)
from tests.doctor.test_doctor_cli import setup

CORPUS = Path(__file__).parent.parent / "data" / "hostile" / "doctor"
CASES = sorted(p.name for p in CORPUS.glob("*.zone"))
DOMAIN = "hostile.test"


def test_the_corpus_holds_at_least_fifteen_inputs():
    assert len(CASES) >= 15


def read_case(path: Path) -> tuple[str, str, list[tuple[str, str, str]]]:
    """(check, expected status, records) of one hostile zone file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    check, status = lines[0].removeprefix("# expect:").split()
    records = []
    for line in lines[1:]:
        name, kind, data = line.split(None, 2)
        if not name.endswith("."):
            name = f"{DOMAIN}." if name == "@" else f"{name}.{DOMAIN}."
        records.append((name, kind, data))
    return check, status, records


@pytest.mark.parametrize("name", CASES)
def test_hostile_dns_answer_is_caught_with_a_fix(name, tmp_path, monkeypatch, dns_server,  # noqa: F811
                                                 smtp_server, web_site, dkim_keys):  # noqa: F811
    drop_newsletter_env(monkeypatch)
    check, status, records = read_case(CORPUS / name)
    replaced = {(n.lower(), k) for n, k, _ in records}
    good = [r for r in zone(DOMAIN, dkim_keys) if (r[0].lower(), r[1]) not in replaced]
    dns = dns_server(good + records)
    ws = setup(tmp_path, DOMAIN, smtp_server, web_site, dkim_keys)
    result = CliRunner().invoke(cli, ["-w", str(ws), "doctor", "--resolver", dns.address,
                                      "--timeout", "2", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert checks[check]["status"] == status, checks[check]
    assert checks[check]["fix"] and "\n" not in checks[check]["fix"]
    assert result.exit_code == (1 if any(c["status"] == "fail" for c in checks.values()) else 0)
