"""Judging a relevant CAA set for one CA, as RFC 8659 and RFC 8657 ask (no DNS involved)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from linkcert.dns.caa import CaaProperty, Reason, evaluate, issue_record

LE = "letsencrypt.org"
ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/123"


def caa(flags: int, tag: str, value: str | bytes, owner: str = "exmpl.com") -> CaaProperty:
    raw = value.encode() if isinstance(value, str) else value
    return CaaProperty(owner, flags, tag.encode(), raw)


def test_empty_set_permits() -> None:
    decision = evaluate((), LE)
    assert (decision.permitted, decision.reason) == (True, Reason.EMPTY_SET)


def test_issue_naming_the_ca_permits() -> None:
    record = caa(0, "issue", LE)
    decision = evaluate((record,), LE)
    assert (decision.permitted, decision.reason, decision.deciding) == (
        True,
        Reason.AUTHORIZED,
        (record,),
    )


def test_issue_naming_another_ca_forbids_and_names_the_record() -> None:
    record = caa(0, "issue", "digicert.com")
    decision = evaluate((record,), LE)
    assert (decision.permitted, decision.reason, decision.deciding) == (
        False,
        Reason.NOT_AUTHORIZED,
        (record,),
    )
    assert record.to_zone() == 'exmpl.com. CAA 0 issue "digicert.com"'


def test_several_issue_records_add_up() -> None:
    records = (caa(0, "issue", "digicert.com"), caa(0, "issue", LE), caa(0, "issue", "pki.goog"))
    for ca in (LE, "digicert.com", "pki.goog"):
        assert evaluate(records, ca).permitted
    assert not evaluate(records, "sectigo.com").permitted


def test_semicolon_forbids_everyone_but_adds_up_with_others() -> None:
    assert not evaluate((caa(0, "issue", ";"),), LE).permitted
    assert evaluate((caa(0, "issue", ";"), caa(0, "issue", LE)), LE).permitted


def test_tags_are_case_insensitive() -> None:
    assert evaluate((caa(0, "IsSuE", LE),), LE).permitted
    assert not evaluate((caa(0, "ISSUE", "digicert.com"),), LE).permitted
    assert evaluate((caa(0, "IODEF", "mailto:x@exmpl.com"),), LE).permitted


def test_critical_unknown_tag_forbids_even_with_an_issue_for_us() -> None:
    critical = caa(128, "tbs", "whatever")
    decision = evaluate((caa(0, "issue", LE), critical), LE)
    assert (decision.permitted, decision.reason, decision.deciding) == (
        False,
        Reason.CRITICAL_UNKNOWN,
        (critical,),
    )


def test_critical_known_tag_and_other_flag_bits_are_fine() -> None:
    assert evaluate((caa(128, "issue", LE),), LE).permitted
    assert evaluate((caa(128 | 1, "ISSUE", LE),), LE).permitted
    assert evaluate((caa(127, "futuretag", "x"), caa(0, "issue", LE)), LE).permitted
    assert evaluate((caa(0, "futuretag", "x"),), LE).permitted


def test_non_restricting_sets_permit() -> None:
    for tags in (["iodef"], ["issuewild"], ["issuemail"], ["issuevmc"], ["iodef", "issuewild"]):
        records = tuple(caa(0, tag, "digicert.com") for tag in tags)
        decision = evaluate(records, LE)
        assert (decision.permitted, decision.reason) == (True, Reason.NO_ISSUE_PROPERTY), tags


def test_issuewild_is_ignored_for_our_names() -> None:
    assert not evaluate((caa(0, "issuewild", LE), caa(0, "issue", ";")), LE).permitted


def test_malformed_values_forbid() -> None:
    near_miss = caa(0, "issue", "letsencrypt.org; accounturi")
    decision = evaluate((near_miss,), LE)
    assert (decision.permitted, decision.reason) == (False, Reason.MALFORMED)
    assert "not a parameter" in decision.note
    garbage = caa(0, "issue", b"\xff\xfe")
    assert evaluate((garbage,), LE).reason is Reason.NOT_AUTHORIZED
    # A malformed record does not hide a good one.
    assert evaluate((near_miss, caa(0, "issue", LE)), LE).permitted


def test_accounturi() -> None:
    record = caa(0, "issue", f"letsencrypt.org; accounturi={ACCOUNT}")
    assert evaluate((record,), LE, account_uri=ACCOUNT).permitted
    other = evaluate((record,), LE, account_uri=ACCOUNT + "9")
    assert (other.permitted, other.reason) == (False, Reason.ACCOUNT_MISMATCH)
    unknown = evaluate((record,), LE, account_uri=None)
    assert (unknown.permitted, unknown.reason) == (False, Reason.ACCOUNT_MISMATCH)
    assert "ours is not set" in unknown.note


def test_validationmethods() -> None:
    both = caa(0, "issue", "letsencrypt.org; validationmethods=dns-01,http-01")
    assert evaluate((both,), LE).permitted
    dns_only = caa(0, "issue", "letsencrypt.org; validationmethods=dns-01")
    decision = evaluate((dns_only,), LE)
    assert (decision.permitted, decision.reason) == (False, Reason.METHOD_NOT_ALLOWED)
    assert evaluate((dns_only,), LE, challenge_method="dns-01").permitted
    empty = caa(0, "issue", "letsencrypt.org; validationmethods=")
    assert evaluate((empty,), LE).reason is Reason.MALFORMED
    trailing_comma = caa(0, "issue", "letsencrypt.org; validationmethods=http-01,")
    assert evaluate((trailing_comma,), LE).reason is Reason.MALFORMED
    assert not evaluate((caa(0, "issue", "letsencrypt.org; validationmethods=,"),), LE).permitted


def test_both_parameters_must_hold() -> None:
    record = caa(0, "issue", f"letsencrypt.org; accounturi={ACCOUNT}; validationmethods=dns-01")
    assert not evaluate((record,), LE, account_uri=ACCOUNT).permitted
    assert evaluate((record,), LE, account_uri=ACCOUNT, challenge_method="dns-01").permitted


def test_unknown_parameters_are_ignored() -> None:
    assert evaluate((caa(0, "issue", "letsencrypt.org; policy=ev"),), LE).permitted


def test_issue_record_text() -> None:
    assert issue_record("links.exmpl.com", LE) == ('links.exmpl.com. CAA 0 issue "letsencrypt.org"')
    assert issue_record("exmpl.com", LE, "accounturi=u") == (
        'exmpl.com. CAA 0 issue "letsencrypt.org; accounturi=u"'
    )


def test_odd_bytes_are_escaped_in_zone_text() -> None:
    record = caa(0, "issue", b'say "hi"\\\x00\xff')
    assert record.to_zone() == 'exmpl.com. CAA 0 issue "say \\"hi\\"\\\\\\000\\255"'


_PROPERTY = st.builds(
    CaaProperty,
    st.just("exmpl.com"),
    st.integers(0, 255),
    st.one_of(st.sampled_from([b"issue", b"ISSUE", b"iodef", b"issuewild", b"x"]), st.binary()),
    st.binary(max_size=60),
)


@given(st.lists(_PROPERTY, max_size=6).map(tuple), st.sampled_from([None, ACCOUNT]))
def test_evaluation_never_raises_and_forbids_with_a_reason(
    properties: tuple[CaaProperty, ...], account: str | None
) -> None:
    decision = evaluate(properties, LE, account_uri=account)
    assert decision.permitted or decision.deciding
    for prop in properties:
        assert prop.to_zone().startswith("exmpl.com. CAA ")
