"""`linkcert check DOMAIN`: is the domain's DNS ready for a certificate?

Exit status: 0 ready (or, with `dcv_zone`, ready to be secured through the `_acme-challenge`
delegation before the switch), 1 not ready (the output says why and what to change), 2 bad input or
usage. Errors go to stderr as one clear line, never as a traceback.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from linkcert.cli.app import app, config_file

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from linkcert.dns.caa_lookup import CaaFinding
    from linkcert.dns.check import CheckResult

EXIT_READY, EXIT_NOT_READY, EXIT_USAGE = 0, 1, 2

# By the value of linkcert.dns.check.State (not imported here: the command loads DNS on use).
_VERDICTS = {
    "ok": "is ready for a certificate",
    "points_elsewhere": "is not ready: it does not point to us",
    "caa_blocked": "is not ready: its CAA records block the certificate authority",
    "dns_error": "is not ready: a DNS lookup failed (this may pass; check again later)",
    "invalid": "is not a domain name we accept",
    "delegated": "can be secured before the switch: its certificate checks are delegated to "
    "us (it does not point to us yet)",
}


@app.command()
def check(
    domain: Annotated[
        str,
        typer.Argument(metavar="DOMAIN", help="The link tracking domain, e.g. links.example.com"),
    ],
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            metavar="HOST",
            help="A platform tracking host the CNAME must reach (repeat for several). "
            "Default: the cname_targets setting.",
        ),
    ] = None,
    edge_address: Annotated[
        list[str] | None,
        typer.Option(
            "--edge-address",
            metavar="IP",
            help="An edge address; a name whose A/AAAA are exactly these also passes (repeat). "
            "Default: the edge_addresses setting.",
        ),
    ] = None,
    ca_domain: Annotated[
        list[str] | None,
        typer.Option(
            "--ca-domain",
            metavar="DOMAIN",
            help="A CA's CAA issuer domain (repeat; the first decides). "
            "Default: the ca_domains setting (letsencrypt.org).",
        ),
    ] = None,
    account_uri: Annotated[
        str | None,
        typer.Option("--account-uri", metavar="URI", help="Our ACME account URI, for accounturi."),
    ] = None,
    challenge_method: Annotated[
        str,
        typer.Option("--challenge-method", metavar="METHOD", help="For validationmethods."),
    ] = "http-01",
    nameserver: Annotated[
        list[str] | None,
        typer.Option(
            "--nameserver",
            metavar="HOST[:PORT]",
            help="A DNS server to ask, IPv6 as [ADDR]:PORT (repeat). "
            "Default: the nameservers setting, else the system's.",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Per-query DNS timeout. Default: the dns_timeout setting.",
        ),
    ] = None,
    allow_test_domains: Annotated[
        bool,
        typer.Option(
            "--allow-test-domains",
            help="Accept names under .test, as the allow_test_domains setting does.",
        ),
    ] = False,
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            metavar="NAME",
            help="Check the _acme-challenge delegation against this account's own label "
            "(read from the database). Without it, any label in dcv_zone counts.",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
) -> None:
    """Check whether DOMAIN can get a certificate: its CNAME, and the CAA records that apply.

    The names accepted, and the defaults of the options, come from the settings, as for the
    worker that checks the domains customers save.
    """
    import asyncio
    import dataclasses

    from linkcert.config_sources import ConfigError, basic_settings
    from linkcert.dns.check import DEFAULT_CA_DOMAINS, CheckConfig, State, check_domain
    from linkcert.dns.resolver import ResolverConfigError
    from linkcert.names import NamePolicy

    try:
        # Only the settings the check uses: the settings model is for the service's commands.
        current = basic_settings(config_file())
    except ConfigError as error:
        _usage_error(str(error))
    if allow_test_domains:
        current = dataclasses.replace(current, allow_test_domains=True)
    targets = tuple(target or ()) or current.cname_targets
    edges = tuple(edge_address or ()) or current.edge_addresses
    if not targets and not edges:
        _usage_error(
            "give the platform tracking host the CNAME must reach with --target HOST "
            "(or set cname_targets)"
        )
    try:
        config = CheckConfig(
            cname_targets=targets,
            edge_addresses=edges,
            ca_domains=tuple(ca_domain or current.ca_domains or DEFAULT_CA_DOMAINS),
            account_uri=account_uri,
            challenge_method=challenge_method,
            any_ca=current.ca_count > 1 and not ca_domain,
            name_policy=NamePolicy.from_settings(current),
            nameservers=tuple(nameserver or current.nameservers),
            timeout=timeout if timeout is not None else current.dns_timeout,
            dcv_zone=current.dcv_zone,
        )
        if account is not None:
            config = dataclasses.replace(
                config,
                dcv_label=_account_dcv_label(current.effective_database_url, account, domain),
            )
        result = asyncio.run(check_domain(domain, config))
    except (ValueError, ResolverConfigError) as error:
        _usage_error(str(error))
    except Exception as error:  # a bug: still say it plainly rather than dump a traceback
        _usage_error(f"unexpected {type(error).__name__}: {error} (please report this)")
    if result.state is State.INVALID:
        _usage_error("; ".join(problem.message for problem in result.problems))
    if json_output:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        from rich.console import Console

        _print_report(result, Console(highlight=False))
    raise typer.Exit(EXIT_READY if result.securable else EXIT_NOT_READY)


def _account_dcv_label(database_url: str, account: str, domain: str) -> str | None:
    """The account's delegation label for the name, from the database."""
    from linkcert.domains import NotFound, find_account
    from linkcert.names import STORED_NAMES, DomainNameError, validate
    from linkcert.ownership import dcv_label
    from linkcert.store import Store

    try:
        name = validate(domain, STORED_NAMES).ascii
    except DomainNameError:
        return None  # the check itself says what is wrong with the name
    store = Store(database_url)
    try:
        with store.session() as session:
            secret = find_account(session, account).dcv_secret
    except NotFound:
        _usage_error(f"no account {account!r}")
    finally:
        store.close()
    return dcv_label(secret, name) if secret else None


def _usage_error(message: str) -> NoReturn:
    typer.echo(f"linkcert check: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _print_report(result: CheckResult, console: Console) -> None:
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    mark, style = ("✓", "bold green") if result.ready else ("✗", "bold red")
    console.print(Text.assemble((f"{mark} {result.domain}", style), f" {_VERDICTS[result.state]}"))
    findings = Table.grid(padding=(0, 2))
    findings.add_column(style="bold", no_wrap=True)
    findings.add_column(no_wrap=True)
    findings.add_column()
    if result.cname is not None:
        findings.add_row("CNAME", _ok_or_not(result.cname.ok), result.cname.found)
    if result.caa is not None:
        findings.add_row("CAA", _ok_or_not(result.caa.permits), _caa_summary(result.caa))
    if result.dcv is not None:
        dcv = result.dcv
        found = f"{dcv.name} → {dcv.found}" if dcv.found else f"no CNAME at {dcv.name}"
        if dcv.expected and not dcv.ok:
            found += f" (expected {dcv.expected})"
        if dcv.ok and not dcv.caa_allows:
            found += " (CAA does not allow dns-01)"
        findings.add_row("Delegation", _ok_or_not(dcv.ok and dcv.caa_allows), found)
    console.print(Padding(findings, (1, 0, 0, 2), expand=False))
    for problem in result.problems:
        console.print(Text.assemble(("\nProblem ", "bold"), f"[{problem.code}]"))
        console.print(Padding(Text(problem.message), (0, 0, 0, 2), expand=False))
        console.print(
            Padding(Text.assemble(("Fix: ", "bold"), problem.fix), (0, 0, 0, 2), expand=False)
        )


def _ok_or_not(ok: bool) -> Text:
    from rich.text import Text

    return Text("ok", style="green") if ok else Text("no", style="red")


def _caa_summary(finding: CaaFinding) -> str:
    from linkcert.dns.problems import ca_label

    if finding.failure is not None:
        return (
            f"could not read the CAA records of {finding.failure.name} ({finding.failure.detail})"
        )
    relevant = finding.relevant
    if relevant is None or relevant.name is None:
        found = "no CAA records up to the top-level domain: any CA may issue"
    else:
        place = relevant.name
        if relevant.owner != relevant.name:
            place = f"{relevant.name} (alias of {relevant.owner})"
        found = "\n".join([f"records at {place}:", *finding.records])
    allowed = ", ".join(ca_label(ca) for ca in finding.permitted_cas) or "none of ours"
    return f"{found}\nallowed: {allowed}"
