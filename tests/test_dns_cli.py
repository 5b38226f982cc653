"""`linkcert check`: exit codes 0/1/2, human output, JSON shape, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from linkcert.cli import app
from linkcert.testbed.localdns import LocalDNSServer

NAME = "links.exmpl.com"
TARGET = "track.platform.example"


def run(server: LocalDNSServer, *args: str) -> tuple[int, str, str]:
    arguments = [
        "check",
        *args,
        "--nameserver",
        server.nameserver,
        "--target",
        TARGET,
        "--allow-test-domains",
    ]
    result = CliRunner().invoke(app, arguments)
    return result.exit_code, result.stdout, result.stderr


def test_ready_exits_0(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    code, out, err = run(dns_server, NAME)
    assert (code, err) == (0, "")
    assert f"✓ {NAME} is ready for a certificate" in out
    assert f"CNAME {NAME} → {TARGET}" in out
    assert "any CA may issue" in out


def test_not_ready_exits_1_and_says_what_to_add(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    dns_server.add("exmpl.com", "CAA", '0 issue "digicert.com"')
    code, out, _ = run(dns_server, NAME)
    assert code == 1
    flat = " ".join(out.split())
    assert "its CAA records block the certificate authority" in flat
    assert 'exmpl.com. CAA 0 issue "digicert.com"' in flat
    assert 'Fix: Add this record: exmpl.com. CAA 0 issue "letsencrypt.org"' in flat
    assert "[caa_not_authorized]" in flat


def test_json_output(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", "elsewhere.exmpl.net")
    code, out, _ = run(dns_server, "LINKS.exmpl.com.", "--json")
    assert code == 1
    document = json.loads(out)
    assert document["domain"] == NAME
    assert document["ready"] is False
    assert set(document["cname"]) >= {"ok", "chain", "found"}
    assert document["cname"]["chain"] == [NAME, "elsewhere.exmpl.net"]
    assert set(document["caa"]) >= {"permits", "permitted_cas", "relevant_name", "records"}
    assert document["caa"]["permits"] is True
    assert document["caa"]["relevant_name"] is None
    assert [problem["code"] for problem in document["problems"]] == ["cname_points_elsewhere"]
    assert set(document["problems"][0]) == {"code", "message", "fix"}


def test_options_reach_the_check(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "A", "192.0.2.10")
    dns_server.add("exmpl.com", "CAA", '0 issue "pki.goog"')
    code, out, _ = run(
        dns_server,
        "exmpl.com",
        "--edge-address",
        "192.0.2.10",
        "--ca-domain",
        "pki.goog",
        "--ca-domain",
        "letsencrypt.org",
        "--json",
    )
    document = json.loads(out)
    assert code == 0
    assert document["cname"]["ok"] is True
    assert document["caa"]["permitted_cas"] == ["pki.goog"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad..name"], ""),  # the wording is the domain-name rules' own
        (["ok.exmpl.com", "--nameserver", "dns.exmpl.com"], "is not an IP address"),
        (["ok.exmpl.com", "--nameserver", "127.0.0.1:99999"], "from 1 to 65535"),
        (["ok.exmpl.com", "--edge-address", "300.1.1.1"], "not an IP address"),
        (["ok.exmpl.com", "--timeout", "0"], "positive"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    dns_server: LocalDNSServer, args: list[str], message: str
) -> None:
    code, out, err = run(dns_server, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("linkcert check: ") and message in err
    assert "Traceback" not in err


def test_missing_target_exits_2() -> None:
    result = CliRunner().invoke(app, ["check", NAME, "--nameserver", "127.0.0.1:53"])
    assert result.exit_code == 2
    assert "--target HOST" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert CliRunner().invoke(app, ["check"]).exit_code == 2
    assert CliRunner().invoke(app, ["check", NAME, "--no-such-option"]).exit_code == 2


def test_real_entry_point_never_prints_a_traceback(dns_server: LocalDNSServer) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    command = [sys.executable, "-m", "linkcert", "check", "--target", TARGET]
    command += ["--nameserver", dns_server.nameserver, "--allow-test-domains"]
    ready = subprocess.run([*command, NAME, "--json"], capture_output=True, text=True)
    assert ready.returncode == 0, ready.stderr
    assert json.loads(ready.stdout)["ready"] is True
    bad = subprocess.run([*command, "not a name"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and bad.stderr.startswith("linkcert check: ")


def test_check_follows_the_settings_name_policy(
    dns_server: LocalDNSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check` accepts and refuses the names `serve` does: one policy from the settings."""
    dns_server.add("links.shop.test", "CNAME", TARGET)
    arguments = ["check", "links.shop.test", "--nameserver", dns_server.nameserver]
    arguments += ["--target", TARGET]
    monkeypatch.delenv("LINKCERT_ALLOW_TEST_DOMAINS", raising=False)
    refused = CliRunner().invoke(app, arguments)
    assert refused.exit_code == 2 and ".test" in refused.stderr
    monkeypatch.setenv("LINKCERT_ALLOW_TEST_DOMAINS", "1")
    accepted = CliRunner().invoke(app, arguments)
    assert accepted.exit_code == 0, accepted.stderr
    assert "✓ links.shop.test is ready for a certificate" in accepted.stdout
    monkeypatch.setenv("LINKCERT_PLATFORM_DOMAINS", "shop.test")
    platform = CliRunner().invoke(app, arguments)
    assert platform.exit_code == 2 and "Traceback" not in platform.stderr


def test_check_takes_its_defaults_from_the_settings(
    dns_server: LocalDNSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns_server.add(NAME, "CNAME", TARGET)
    monkeypatch.setenv("LINKCERT_CNAME_TARGETS", TARGET)
    monkeypatch.setenv("LINKCERT_NAMESERVERS", dns_server.nameserver)
    result = CliRunner().invoke(app, ["check", NAME, "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ready"] is True


def test_check_with_bad_settings_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKCERT_DNS_TIMEOUT", "soon")
    result = CliRunner().invoke(app, ["check", NAME, "--target", TARGET])
    assert result.exit_code == 2
    assert "dns_timeout" in result.stderr and "Traceback" not in result.stderr
