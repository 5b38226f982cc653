"""What is wrong with a domain's DNS, in words a customer understands, and the record to fix it.

Codes are stable: support documentation (docs/dns-check.md) and other programs rely on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from linkcert.dns.caa import (
    CaaProperty,
    CaaValueError,
    Decision,
    Reason,
    evaluate,
    issue_record,
    parse_issuer_value,
)
from linkcert.dns.caa_lookup import CaaFinding, RelevantSet
from linkcert.dns.cname import CnameFinding, CnameStatus
from linkcert.dns.resolver import MAX_ALIAS_HOPS, Outcome

if TYPE_CHECKING:
    from linkcert.dns.check import CheckConfig, DcvFinding


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    fix: str


# Friendly names for CA domains people will meet; any other CA is shown by its domain alone.
_CA_NAMES = {
    "letsencrypt.org": "Let's Encrypt",
    "pki.goog": "Google Trust Services",
    "sectigo.com": "Sectigo",
    "digicert.com": "DigiCert",
    "globalsign.com": "GlobalSign",
    "amazon.com": "Amazon",
}


def ca_label(ca_domain: str) -> str:
    name = _CA_NAMES.get(ca_domain)
    return f"{name} ({ca_domain})" if name else ca_domain


def cname_problems(
    domain: str, finding: CnameFinding, targets: tuple[str, ...], edges: tuple[str, ...]
) -> list[Problem]:
    """The problem with where `domain` points, if any."""
    target = targets[0] if targets else None
    add_cname = (
        f"At your DNS provider, add this record: {domain}. CNAME {target}."
        if target
        else f"Give {domain} A/AAAA records with exactly these addresses: {', '.join(edges)}."
    )
    change_cname = (
        f"Replace the CNAME record of {domain} with: {domain}. CNAME {target}."
        if target
        else add_cname
    )
    arrows = " → ".join(finding.chain)
    match finding.status:
        case CnameStatus.REACHES_TARGET | CnameStatus.EDGE_ADDRESSES:
            return []
        case CnameStatus.NOT_FOUND:
            message = f"{domain} does not exist in DNS yet."
            return [Problem("name_not_found", message, add_cname)]
        case CnameStatus.NO_RECORD:
            message = f"{domain} exists in DNS but has no CNAME record pointing to us."
            return [Problem("cname_missing", message, add_cname)]
        case CnameStatus.ELSEWHERE:
            message = f"{domain} points to {finding.final_name} ({arrows}), not to us."
            return [Problem("cname_points_elsewhere", message, change_cname)]
        case CnameStatus.OTHER_ADDRESSES:
            addresses = ", ".join(finding.addresses)
            message = (
                f"{domain} has no CNAME record pointing to us: it resolves to {addresses}, "
                "which is not our service. If a CDN or proxy sits in front of the name (for "
                "example Cloudflare with the orange cloud on), it hides the CNAME record."
            )
            fix = (
                f"Remove the A/AAAA records of {domain}. {add_cname} "
                "If your DNS provider proxies the name, switch it to DNS only."
            )
            if edges:
                fix += (
                    " At the root of a domain, where a CNAME is not allowed, use your "
                    "provider's CNAME flattening (ALIAS) instead, or A/AAAA records with exactly "
                    f"these addresses: {', '.join(edges)}."
                )
            return [Problem("addresses_not_ours", message, fix)]
        case CnameStatus.LOOP:
            message = f"The CNAME records of {domain} form a loop ({arrows}), so it leads nowhere."
            return [Problem("cname_loop", message, change_cname)]
        case CnameStatus.TOO_LONG:
            message = (
                f"{domain} goes through more than {MAX_ALIAS_HOPS} CNAME records; "
                "resolvers and certificate authorities give up on such chains."
            )
            return [Problem("cname_chain_too_long", message, change_cname)]
        case CnameStatus.SERVFAIL:
            message = (
                f"Looking up {domain} failed ({finding.detail or 'SERVFAIL'}). The DNS servers "
                "of the domain may be down or misconfigured (for example a broken delegation "
                "or a DNSSEC error)."
            )
            return [Problem("dns_servfail", message, _dns_fix(domain))]
        case CnameStatus.TIMEOUT:
            message = f"No DNS server answered for {domain} ({finding.detail or 'timed out'})."
            return [Problem("dns_timeout", message, _dns_fix(domain))]


def caa_problems(
    domain: str,
    finding: CaaFinding,
    targets: tuple[str, ...],
    account_uri: str | None,
    challenge_method: str,
) -> list[Problem]:
    """The problem with the CAA records that apply to `domain`, for the first CA, if any."""
    if finding.failure is not None:
        failure = finding.failure
        what = "timed out" if failure.outcome is Outcome.TIMEOUT else "failed"
        message = (
            f"Reading the CAA records of {failure.name} {what} ({failure.detail}). "
            "A certificate authority refuses to issue when it cannot read them."
        )
        fix = (
            f"Make sure the DNS servers of {failure.name} answer CAA queries (some older DNS "
            "servers and appliances fail on them), then check again."
        )
        return [Problem("caa_lookup_failed", message, fix)]
    if finding.relevant is None or not finding.decisions or finding.decisions[0].permitted:
        return []
    decision = finding.decisions[0]
    return [
        _caa_refusal(domain, finding.relevant, decision, targets, account_uri, challenge_method)
    ]


def _caa_refusal(
    domain: str,
    relevant: RelevantSet,
    decision: Decision,
    targets: tuple[str, ...],
    account_uri: str | None,
    challenge_method: str,
) -> Problem:
    owner = relevant.owner or domain
    ca = decision.ca_domain
    records = "; ".join(prop.to_zone() for prop in decision.deciding)
    add_ours = issue_record(owner, ca)
    if any(hop in targets for hop in relevant.path[1:]):
        message = (
            f"The CAA records of our tracking host {owner}, which {domain} points to, do not "
            f"allow {ca_label(ca)} ({records}). This is on our side: your DNS needs no change."
        )
        fix = f"Platform operators: add this record to the platform's zone: {add_ours}"
        return Problem("caa_platform_blocked", message, fix)
    where = _where(domain, relevant)
    match decision.reason:
        case Reason.CRITICAL_UNKNOWN:
            message = (
                f"{where}{records} is marked critical (flag 128) with a tag that certificate "
                f"authorities do not know, which forbids any certificate for {domain}."
            )
            fix = "Remove that record, or change its flag from 128 to 0."
            return Problem("caa_critical_tag", message, fix)
        case Reason.ACCOUNT_MISMATCH:
            message = f"{where}{records} lets {ca_label(ca)} issue only to another ACME account."
            if account_uri:
                restricted = issue_record(owner, ca, f"accounturi={account_uri}")
                fix = f"Change it to: {restricted} (or add: {add_ours})."
            else:
                fix = f"Remove its accounturi parameter, or add this record: {add_ours}"
            return Problem("caa_account_mismatch", message, fix)
        case Reason.METHOD_NOT_ALLOWED:
            message = f"{where}{records} lets {ca_label(ca)} issue, but {decision.note}."
            fix = f"Add this record: {add_ours}"
            widened = _with_method(decision.deciding[0], ca, owner, challenge_method)
            if widened:
                fix = f"Change that record to: {widened} (or add: {add_ours})."
            return Problem("caa_validation_method", message, fix)
        case Reason.MALFORMED:
            message = (
                f"{where}{records} seems meant for {ca_label(ca)} but is not valid CAA syntax "
                f"({decision.note}), so it forbids issuance."
            )
            return Problem("caa_malformed", message, f"Replace it with: {add_ours}")
        case _:
            message = f"{where}{_allowed_only(decision.deciding, ca)}: {records}."
            fix = (
                f"Add this record: {add_ours} (CAA records add up: the CAs already "
                "listed stay allowed)."
            )
            return Problem("caa_not_authorized", message, fix)


def _where(domain: str, relevant: RelevantSet) -> str:
    """Explain why a record at another name applies to `domain`."""
    if relevant.name == domain and relevant.owner == domain:
        return ""
    if relevant.name == domain:
        return f"{domain} is an alias of {relevant.owner}, whose CAA records apply to it. "
    return f"{domain} has no CAA records of its own, so those of {relevant.name} apply. "


def _allowed_only(properties: tuple[CaaProperty, ...], ca: str) -> str:
    issuers = []
    for prop in properties:
        try:
            issuer = parse_issuer_value(prop.value).issuer
        except CaaValueError:
            continue
        if issuer and issuer not in issuers:
            issuers.append(issuer)
    if not issuers:
        return f"The CAA records forbid every certificate authority, {ca_label(ca)} included"
    return f"The CAA records allow only {', '.join(issuers)}, not {ca_label(ca)}"


def _with_method(prop: CaaProperty, ca: str, owner: str, method: str) -> str | None:
    """The deciding record with our method added to its validationmethods, when it parses."""
    try:
        value = parse_issuer_value(prop.value)
    except CaaValueError:
        return None
    parameters = []
    for key, text in value.parameters:
        if key == "validationmethods":
            text = f"{text},{method}" if text else method
        parameters.append(f"{key}={text}")
    return issue_record(owner, ca, "; ".join(parameters))


def _dns_fix(domain: str) -> str:
    return (
        f"Check that the domain's DNS hosting works and that its NS records at the registrar "
        f"are right; once {domain} resolves normally, check again."
    )


def dcv_problems(
    domain: str,
    dcv: DcvFinding,
    caa: CaaFinding,
    cname_ok: bool,
    config: CheckConfig,
) -> list[Problem]:
    """What stands between `domain` and a certificate through its `_acme-challenge`
    delegation. A missing delegation is a problem only while the name does not point to us:
    then it is what would secure the name before the switch."""
    record = f"{dcv.name}. CNAME {dcv.expected}." if dcv.expected else None
    shown = record or f"{dcv.name}. CNAME <your label>.{dcv.zone}. (shown in your account)"
    if dcv.failure is not None:
        message = (
            f"Looking up {dcv.name} failed ({dcv.failure}), so it is not known whether the "
            "certificate checks of the domain are delegated to us."
        )
        return [Problem("dcv_lookup_failed", message, _dns_fix(dcv.name))]
    if dcv.found is None:
        if cname_ok:
            return []
        message = (
            f"{dcv.name} has no CNAME record delegating the certificate checks of {domain} to "
            "us, so the domain can only be secured once it points to us."
        )
        fix = f"To be secured before you switch, add this record first: {shown}"
        return [Problem("dcv_missing", message, fix)]
    if not dcv.ok:
        if dcv.label is not None:
            message = (
                f"{dcv.name} points to {dcv.found}, which is not your account's delegation "
                f"target for {domain}."
            )
        else:
            message = f"{dcv.name} points to {dcv.found}, not to us."
        fix = (
            f"Replace the CNAME record of {dcv.name} with: {record}"
            if record
            else f"Replace the CNAME record of {dcv.name} with: {shown}"
        )
        return [Problem("dcv_wrong_target", message, fix)]
    if not dcv.caa_allows and not cname_ok:
        finding = CaaFinding(
            caa.relevant,
            caa.failure,
            tuple(
                evaluate(
                    caa.relevant.properties if caa.relevant else (),
                    ca,
                    account_uri=config.account_uri,
                    challenge_method="dns-01",
                )
                for ca in config.ca_domains
            ),
        )
        return caa_problems(domain, finding, config.cname_targets, config.account_uri, "dns-01")
    return []
