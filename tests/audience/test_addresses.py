"""One address rule for the form, the importer and the CLI: the part before the @ is ASCII
(the relay path has no SMTPUTF8), the domain may be an IDN (stored in Unicode, sent in punycode).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.audience.addresses import NonAsciiLocalPart, normalize_email
from newsletter.audience.importer import import_csv
from newsletter.audience.listedits import add_list
from newsletter.audience.subscribers import iter_subscribers
from newsletter.delivery.headers import ascii_address
from tests.conftest import Cli, akey

RULE = "the part before the @ must be plain ASCII"


def test_non_ascii_local_part_is_refused_with_the_rule() -> None:
    for address in ("jörg@exämple.org", "jörg@example.org", "用户@例子.广告"):
        with pytest.raises(NonAsciiLocalPart, match=RULE):
            normalize_email(address)


def test_an_idn_domain_is_one_address_in_either_spelling_and_can_be_sent() -> None:
    stored = normalize_email("Joerg@EXÄMPLE.org")
    assert stored == normalize_email("joerg@xn--exmple-cua.org") == "joerg@exämple.org"
    assert ascii_address(stored) == "joerg@xn--exmple-cua.org"


def test_the_importer_rejects_the_row_and_names_the_rule(services, tmp_path: Path) -> None:
    add_list(services.engine, slug="news", name="News", languages=["en"], default_language="en")
    path = tmp_path / "subs.csv"
    path.write_text("email\njörg@exämple.org\njoerg@exämple.org\n", encoding="utf-8")
    report = import_csv(services.engine, path=path, list_slug="news", address_key=akey(services))
    assert [(p.line, RULE in p.reason) for p in report.rejected] == [(2, True)]
    assert [r.email for r in iter_subscribers(services.engine)] == ["joerg@exämple.org"]


def test_the_cli_refuses_it_in_one_line(run: Cli) -> None:
    run("lists", "add", "news", "--name", "News", "--languages", "en", "--default-language", "en")
    result = run("subscribers", "add", "jörg@exämple.org", "--list", "news", ok=False)
    assert result.exit_code == 1 and RULE in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert run.json("subscribers", "list") == []
