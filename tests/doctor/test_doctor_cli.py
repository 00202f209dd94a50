"""`newsletter doctor` against a real DNS server, SMTP relay and web site on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from tests.conftest import drop_newsletter_env
from tests.doctor.conftest import DkimKeys, WebSite, zone

DNS_CHECKS = ("spf", "spf-bounce-domain", "dkim", "dmarc", "bounce-mx", "relay-ptr")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    drop_newsletter_env(monkeypatch)


def setup(tmp_path: Path, domain: str, relay: Any, site: WebSite, keys: DkimKeys,
          extra: str = "", smtp: str = "") -> Path:
    """A workspace sending as news@<domain> through `relay`, linking to `site`."""
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "newsletter.toml").write_text(f"""[newsletter]
base_url = "{site.base_url}"
from_address = "news@{domain}"

[smtp]
host = "127.0.0.1"
port = {relay if isinstance(relay, int) else relay.port}
{smtp}

[bounces]
domain = "bounces.{domain}"

[dkim]
key_path = "{keys.path}"
selector = "nl"
{extra}
""", encoding="utf-8")
    return ws


def doctor(ws: Path, dns: Any, *args: str) -> tuple[int, dict[str, Any]]:
    """Run `newsletter doctor --json`; (exit code, {check name: result})."""
    resolver = dns if isinstance(dns, str) else dns.address
    result = CliRunner().invoke(cli, ["-w", str(ws), "doctor", "--resolver", resolver,
                                      "--timeout", "2", "--json", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    data = json.loads(result.output)
    checks = {c["name"]: c for c in data["checks"]}
    for check in checks.values():  # every problem comes with a one-line way to fix it
        assert (check["fix"] != "") == (check["status"] != "ok"), check
        assert "\n" not in check["fix"]
    assert result.exit_code == (1 if data["summary"]["fail"] else 0)
    return result.exit_code, checks


def statuses(checks: dict[str, Any]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items()}


def test_a_good_setup_passes_every_check_but_plain_http(
        tmp_path, dns_server, smtp_server, web_site, dkim_keys):
    dns = dns_server(zone("good.test", dkim_keys))
    code, checks = doctor(setup(tmp_path, "good.test", smtp_server, web_site, dkim_keys), dns)
    assert code == 0
    assert statuses(checks) == {name: "ok" for name in checks} | {"base-url-https": "warn"}
    assert "127.0.0.1 by include:_spf.good.test" in checks["spf"]["detail"]
    assert "p=quarantine" in checks["dmarc"]["detail"]
    assert "10 mx.good.test" in checks["bounce-mx"]["detail"]
    assert "test.smtp.local" in checks["relay-ptr"]["detail"]
    assert "https" in checks["base-url-https"]["fix"]


@pytest.mark.parametrize(("spoil", "check", "status", "fix_says"), [
    ({"spf": None}, "spf", "fail", 'v=spf1 ip4:127.0.0.1 ~all'),
    ({"spf": "v=spf1 ip4:192.0.2.0/24 a:mx.{d}/32 -all"}, "spf", "pass-via-a", ""),
    ({"spf": "v=spf1 ip4:192.0.2.0/24 -all"}, "spf", "fail", "add ip4:127.0.0.1"),
    ({"spf": "v=spf1 +all"}, "spf", "warn", "~all or -all"),
    ({"bounce_spf": "v=spf1 ip4:192.0.2.1 ~all"}, "spf-bounce-domain", "fail",
     "add ip4:127.0.0.1 to the SPF record of bounces."),
    ({"dkim": None}, "dkim", "fail", "publish a TXT record at nl._domainkey."),
    ({"dkim": "other"}, "dkim", "fail", "replace it"),
    ({"dmarc": None}, "dmarc", "fail", "v=DMARC1; p=quarantine"),
    ({"dmarc": "v=DMARC1; p=none"}, "dmarc", "warn", "p=quarantine or p=reject"),
    ({"dmarc": "v=DMARC1; p=reject; aspf=s"}, "dmarc-alignment", "warn", "[bounces] domain"),
    ({"mx": False, "bounce_spf": "v=spf1 ip4:127.0.0.1 -all"}, "bounce-mx", "fail",
     "publish an MX record for bounces."),
    ({"ptr": None}, "relay-ptr", "fail", "reverse DNS"),
    ({"ptr": "mx.{d}"}, "relay-ptr", "warn", "HELO name"),
    ({"ptr": "nowhere.{d}"}, "relay-ptr", "fail", "A/AAAA record nowhere.bad.test"),
])
def test_each_broken_record_is_named_with_its_fix(
        tmp_path, dns_server, smtp_server, web_site, dkim_keys, spoil, check, status, fix_says):
    domain = "bad.test"
    spoil = {k: (v.replace("{d}", domain) if isinstance(v, str) else v) for k, v in spoil.items()}
    if spoil.get("dkim") == "other":
        spoil["dkim"] = dkim_keys.other_record
    dns = dns_server(zone(domain, dkim_keys, **spoil))
    code, checks = doctor(setup(tmp_path, domain, smtp_server, web_site, dkim_keys), dns)
    if status == "pass-via-a":  # an a: mechanism that names the relay's host allows it
        assert checks[check]["status"] == "ok" and "a:mx.bad.test" in checks[check]["detail"]
        return
    assert checks[check]["status"] == status, checks[check]
    assert fix_says in checks[check]["fix"]
    others = {n: s for n, s in statuses(checks).items() if n not in (check, "base-url-https")}
    assert set(others.values()) == {"ok"}, others  # one broken record spoils one check
    assert code == (1 if status == "fail" else 0)


def test_spf_with_more_than_ten_lookups_fails(tmp_path, dns_server, smtp_server, web_site,
                                              dkim_keys):
    chain = [(f"l{i}.loop.test.", "TXT", f'"v=spf1 include:l{i + 1}.loop.test -all"')
             for i in range(12)]
    dns = dns_server(zone("loop.test", dkim_keys, spf="v=spf1 include:l0.{d} -all") + chain)
    _, checks = doctor(setup(tmp_path, "loop.test", smtp_server, web_site, dkim_keys), dns)
    assert checks["spf"]["status"] == "fail"
    assert "more than 10 DNS look-ups" in checks["spf"]["detail"]


def test_dkim_signed_for_another_domain_does_not_align(tmp_path, dns_server, smtp_server,
                                                       web_site, dkim_keys):
    records = zone("good.test", dkim_keys) + [("nl._domainkey.esp.test.", "TXT",
                                                 f'"{dkim_keys.record[:200]}" '
                                                 f'"{dkim_keys.record[200:]}"')]
    ws = setup(tmp_path, "good.test", smtp_server, web_site, dkim_keys,
               extra='domain = "esp.test"')
    _, checks = doctor(ws, dns_server(records))
    assert checks["dkim"]["status"] == "ok"
    assert checks["dmarc-alignment"]["status"] == "warn"
    assert "[dkim] domain" in checks["dmarc-alignment"]["fix"]


def test_a_dns_server_that_does_not_answer_is_a_result_not_a_traceback(
        tmp_path, smtp_server, web_site, dkim_keys, unused_port):
    ws = setup(tmp_path, "good.test", smtp_server, web_site, dkim_keys)
    code, checks = doctor(ws, f"127.0.0.1:{unused_port}")
    assert code == 1
    for name in DNS_CHECKS:
        assert checks[name]["status"] == "fail"
    assert "did not answer" in checks["spf"]["detail"]
    assert "--resolver" in checks["spf"]["fix"]
    assert checks["smtp-greeting"]["status"] == "ok"


def test_a_relay_that_is_down_fails_the_smtp_checks(tmp_path, dns_server, web_site, dkim_keys,
                                                    unused_port):
    dns = dns_server(zone("good.test", dkim_keys))
    code, checks = doctor(setup(tmp_path, "good.test", unused_port, web_site, dkim_keys), dns)
    assert code == 1
    assert checks["smtp-greeting"]["status"] == "fail"
    assert f"127.0.0.1:{unused_port}" in checks["smtp-greeting"]["detail"]
    assert checks["smtp-starttls"]["status"] == checks["smtp-auth"]["status"] == "fail"
    assert checks["spf"]["status"] == "ok"


def test_starttls_required_but_not_offered_fails(tmp_path, dns_server, smtp_server, web_site,
                                                 dkim_keys):
    ws = setup(tmp_path, "good.test", smtp_server, web_site, dkim_keys, smtp='tls = "starttls"')
    _, checks = doctor(ws, dns_server(zone("good.test", dkim_keys)))
    assert checks["smtp-starttls"]["status"] == "fail"
    assert "does not offer STARTTLS" in checks["smtp-starttls"]["detail"]


def test_a_user_without_auth_on_the_relay_fails(tmp_path, dns_server, smtp_server, web_site,
                                                dkim_keys):
    ws = setup(tmp_path, "good.test", smtp_server, web_site, dkim_keys, smtp='user = "news"')
    _, checks = doctor(ws, dns_server(zone("good.test", dkim_keys)))
    assert checks["smtp-auth"]["status"] == "fail"
    assert "tls = starttls" in checks["smtp-auth"]["fix"]


def test_web_app_down_unhealthy_or_archive_missing(tmp_path, dns_server, smtp_server, web_site,
                                                   dkim_keys, unused_port):
    dns = dns_server(zone("good.test", dkim_keys))
    web_site.healthy, web_site.archive = False, False
    _, checks = doctor(setup(tmp_path, "good.test", smtp_server, web_site, dkim_keys), dns)
    assert checks["healthz"]["status"] == "fail" and "503" in checks["healthz"]["detail"]
    assert checks["archive-url"]["status"] == "fail"
    assert "newsletter archive build" in checks["archive-url"]["fix"]
    assert checks["unsubscribe-url"]["status"] == "ok"  # 400: the app refused the probe token
    assert "GET /unsubscribe/doctor-probe" in web_site.requests

    web_site.server.server_address = ("127.0.0.1", unused_port)  # base_url now leads nowhere
    _, checks = doctor(setup(tmp_path, "good.test", smtp_server, web_site, dkim_keys), dns)
    for name in ("base-url-reachable", "healthz", "unsubscribe-url", "archive-url"):
        assert checks[name]["status"] == "fail"
        assert "did not answer" in checks[name]["detail"]


def test_text_output_has_one_line_per_check_and_fix_without_colour(
        tmp_path, dns_server, smtp_server, web_site, dkim_keys):
    dns = dns_server(zone("bad.test", dkim_keys, dmarc=None))
    ws = setup(tmp_path, "bad.test", smtp_server, web_site, dkim_keys)
    result = CliRunner().invoke(cli, ["-w", str(ws), "doctor", "--resolver", dns.address])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "\x1b[" not in result.output  # not a terminal: no colour codes
    dmarc = next(i for i, line in enumerate(lines) if line.startswith("fail dmarc "))
    assert "fix: publish a TXT record at _dmarc.bad.test" in lines[dmarc + 1]
    assert lines[-1].endswith("1 fail")


@pytest.mark.parametrize("value", ["dns.example.org:53", "127.0.0.1:99999", "1.2.3.4:x"])
def test_a_wrong_resolver_is_one_clear_line(tmp_path, web_site, dkim_keys, value, unused_port):
    ws = setup(tmp_path, "good.test", unused_port, web_site, dkim_keys)
    result = CliRunner().invoke(cli, ["-w", str(ws), "doctor", "--resolver", value])
    assert result.exit_code == 1
    assert result.output.startswith("Error: resolver:") and len(result.output.splitlines()) == 1
