"""LocalDNSServer answers like a recursive resolver for the names it holds (raw DNS queries)."""

from __future__ import annotations

import socket
import textwrap
import threading

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from linkcert.testbed.localdns import LocalDNSServer


def ask(
    server: LocalDNSServer,
    name: str,
    rtype: str = "A",
    *,
    tcp: bool = False,
    payload: int | None = None,
) -> dns.message.Message:
    query = dns.message.make_query(
        name, rtype, use_edns=0 if payload else None, payload=payload or 1232
    )
    host, port = server.address
    if tcp:
        return dns.query.tcp(query, host, port=port, timeout=2)
    return dns.query.udp(query, host, port=port, timeout=2, raise_on_truncation=False)


def answer_text(response: dns.message.Message) -> list[str]:
    return [line for rrset in response.answer for line in rrset.to_text().splitlines()]


def test_answers_records_it_holds(dns_server: LocalDNSServer) -> None:
    dns_server.add("track.platform.example", "A", "127.0.0.1", ttl=60)
    response = ask(dns_server, "track.PLATFORM.example.")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.RA
    # Names match whatever their case; the answer spells the name as the question did.
    assert answer_text(response) == ["track.PLATFORM.example. 60 IN A 127.0.0.1"]


def test_cname_chain_is_followed_and_returned_whole(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.exmpl.com", "CNAME", "alias.exmpl.net")
    dns_server.add("alias.exmpl.net", "CNAME", "track.platform.example")
    dns_server.add("track.platform.example", "A", "192.0.2.10")
    response = ask(dns_server, "links.exmpl.com")
    assert [rrset.rdtype for rrset in response.answer] == [
        dns.rdatatype.CNAME,
        dns.rdatatype.CNAME,
        dns.rdatatype.A,
    ]
    assert response.answer[-1].name.to_text() == "track.platform.example."


def test_cname_query_returns_the_cname_itself(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.exmpl.com", "CNAME", "track.platform.example")
    dns_server.add("track.platform.example", "A", "192.0.2.10")
    response = ask(dns_server, "links.exmpl.com", "CNAME")
    assert answer_text(response) == ["links.exmpl.com. 300 IN CNAME track.platform.example."]


def test_cname_loop_returns_the_loop_and_stops(dns_server: LocalDNSServer) -> None:
    dns_server.add("a.exmpl.com", "CNAME", "b.exmpl.com")
    dns_server.add("b.exmpl.com", "CNAME", "a.exmpl.com")
    response = ask(dns_server, "a.exmpl.com")
    assert response.rcode() == dns.rcode.NOERROR
    assert len(response.answer) == 2


def test_dname_synthesizes_a_cname(dns_server: LocalDNSServer) -> None:
    dns_server.add("old.example", "DNAME", "new.example")
    dns_server.add("links.new.example", "A", "192.0.2.20")
    response = ask(dns_server, "links.old.example")
    assert answer_text(response) == [
        "old.example. 300 IN DNAME new.example.",
        "links.old.example. 300 IN CNAME links.new.example.",
        "links.new.example. 300 IN A 192.0.2.20",
    ]
    # The DNAME owner itself is not redirected.
    assert ask(dns_server, "old.example").rcode() == dns.rcode.NOERROR
    assert ask(dns_server, "old.example").answer == []


def test_nxdomain_only_when_nothing_is_at_or_below(dns_server: LocalDNSServer) -> None:
    dns_server.add("deep.links.exmpl.com", "A", "192.0.2.1")
    assert ask(dns_server, "nothing.exmpl.com").rcode() == dns.rcode.NXDOMAIN
    empty_non_terminal = ask(dns_server, "links.exmpl.com")
    assert empty_non_terminal.rcode() == dns.rcode.NOERROR
    assert empty_non_terminal.answer == []
    assert ask(dns_server, "com", "CAA").rcode() == dns.rcode.NOERROR


def test_nodata_for_a_missing_type(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.exmpl.com", "A", "192.0.2.1")
    response = ask(dns_server, "links.exmpl.com", "AAAA")
    assert (response.rcode(), response.answer) == (dns.rcode.NOERROR, [])


def test_negative_answers_carry_the_zone_soa(dns_server: LocalDNSServer) -> None:
    dns_server.load_zone(
        "@ 3600 SOA ns.exmpl.com. admin.exmpl.com. 1 7200 900 1209600 60\nwww A 192.0.2.1",
        "exmpl.com",
    )
    response = ask(dns_server, "missing.exmpl.com")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


def test_servfail_and_timeout_per_name_and_type(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.exmpl.com", "A", "192.0.2.1")
    dns_server.set_servfail("links.exmpl.com", "CAA")
    assert ask(dns_server, "links.exmpl.com", "CAA").rcode() == dns.rcode.SERVFAIL
    assert ask(dns_server, "links.exmpl.com", "A").rcode() == dns.rcode.NOERROR
    dns_server.set_timeout("slow.exmpl.com")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(
            dns.message.make_query("slow.exmpl.com", "A"),
            dns_server.address[0],
            port=dns_server.address[1],
            timeout=0.2,
        )
    dns_server.clear_failures()
    assert ask(dns_server, "links.exmpl.com", "CAA").rcode() == dns.rcode.NOERROR


def test_failure_met_in_the_middle_of_a_chain(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.exmpl.com", "CNAME", "broken.exmpl.net")
    dns_server.set_servfail("broken.exmpl.net")
    assert ask(dns_server, "links.exmpl.com").rcode() == dns.rcode.SERVFAIL


def test_caa_with_any_flags_tags_and_raw_values(dns_server: LocalDNSServer) -> None:
    dns_server.add("exmpl.com", "CAA", '128 tbs "unknown"')
    dns_server.add("exmpl.com", "CAA", '0 IsSuE "letsencrypt.org; accounturi=x"')
    dns_server.add("exmpl.com", "CAA", r"\# 8 0005 6973737565 ff")  # 0 issue "\255"
    lines = answer_text(ask(dns_server, "exmpl.com", "CAA"))
    assert lines == [
        'exmpl.com. 300 IN CAA 128 tbs "unknown"',
        'exmpl.com. 300 IN CAA 0 IsSuE "letsencrypt.org; accounturi=x"',
        'exmpl.com. 300 IN CAA 0 issue "\\255"',
    ]


def test_big_answers_are_truncated_over_udp_and_whole_over_tcp(
    dns_server: LocalDNSServer,
) -> None:
    for i in range(40):
        dns_server.add("big.exmpl.com", "CAA", f'0 issue "ca-number-{i}.example"')
    classic = ask(dns_server, "big.exmpl.com", "CAA")
    assert classic.flags & dns.flags.TC and classic.answer == []
    # Forty records fit in 4096 bytes: a client announcing that size gets them over UDP.
    roomy = ask(dns_server, "big.exmpl.com", "CAA", payload=4096)
    assert not roomy.flags & dns.flags.TC and len(roomy.answer[0]) == 40
    over_tcp = ask(dns_server, "big.exmpl.com", "CAA", tcp=True)
    assert len(over_tcp.answer[0]) == 40
    assert dns_server.tcp_query_count == 1


def test_tcp_connection_serves_several_queries(dns_server: LocalDNSServer) -> None:
    dns_server.add("a.exmpl.com", "A", "192.0.2.1")
    with socket.create_connection(dns_server.address, timeout=2) as connection:
        for _ in range(3):
            dns.query.send_tcp(connection, dns.message.make_query("a.exmpl.com", "A"))
            response, _ = dns.query.receive_tcp(connection)
            assert answer_text(response) == ["a.exmpl.com. 300 IN A 192.0.2.1"]


def test_garbage_gets_formerr_or_silence(dns_server: LocalDNSServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"\x12\x34" + b"\x01\x00" + b"\x00\x05" + b"\xff" * 10, dns_server.address)
        reply, _ = sock.recvfrom(512)
    assert reply[:2] == b"\x12\x34"
    assert reply[3] & 0x0F == dns.rcode.FORMERR


def test_records_change_at_runtime(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.exmpl.com", "CNAME", "old.exmpl.net")
    dns_server.add("links.exmpl.com", "CNAME", "track.platform.example")  # replaces
    assert answer_text(ask(dns_server, "links.exmpl.com", "CNAME")) == [
        "links.exmpl.com. 300 IN CNAME track.platform.example."
    ]
    dns_server.remove("links.exmpl.com")
    assert ask(dns_server, "links.exmpl.com").rcode() == dns.rcode.NXDOMAIN
    dns_server.add("links.exmpl.com", "A", "192.0.2.1")
    dns_server.clear()
    assert ask(dns_server, "links.exmpl.com").rcode() == dns.rcode.NXDOMAIN


def test_cname_beside_other_data_is_refused(dns_server: LocalDNSServer) -> None:
    dns_server.add("links.exmpl.com", "A", "192.0.2.1")
    with pytest.raises(ValueError, match="CNAME and other records"):
        dns_server.add("links.exmpl.com", "CNAME", "track.platform.example")


def test_bad_record_data_is_refused_clearly(dns_server: LocalDNSServer) -> None:
    with pytest.raises(ValueError, match="cannot parse A data"):
        dns_server.add("x.exmpl.com", "A", "not-an-address")
    with pytest.raises(ValueError, match="unknown record type"):
        dns_server.add("x.exmpl.com", "NOPE", "1")
    with pytest.raises(ValueError, match="3 bytes, not 4"):
        dns_server.add("x.exmpl.com", "CAA", r"\# 4 000102")


def test_load_zone(dns_server: LocalDNSServer) -> None:
    dns_server.load_zone(
        textwrap.dedent(
            """
            $TTL 120
            @        CAA   0 issue "letsencrypt.org"
            links    CNAME track.platform.example.
            $ORIGIN sub.exmpl.com.
            www 30   A     192.0.2.7
            """
        ),
        "exmpl.com",
    )
    assert answer_text(ask(dns_server, "exmpl.com", "CAA")) == [
        'exmpl.com. 120 IN CAA 0 issue "letsencrypt.org"'
    ]
    assert answer_text(ask(dns_server, "www.sub.exmpl.com")) == [
        "www.sub.exmpl.com. 30 IN A 192.0.2.7"
    ]
    with pytest.raises(ValueError, match="outside"):
        dns_server.load_zone("www.other.example. A 192.0.2.8", "exmpl.com")


def test_query_count_and_address(dns_server: LocalDNSServer) -> None:
    host, port = dns_server.address
    assert host == "127.0.0.1" and port > 0
    assert dns_server.nameserver == f"127.0.0.1:{port}"
    dns_server.reset_query_count()
    ask(dns_server, "a.exmpl.com")
    ask(dns_server, "b.exmpl.com", tcp=True)
    assert (dns_server.query_count, dns_server.tcp_query_count) == (2, 1)


def test_lifecycle() -> None:
    server = LocalDNSServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.address
    server.start()
    with pytest.raises(RuntimeError, match="already running"):
        server.start()
    server.stop()
    server.stop()  # a second stop does nothing


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = LocalDNSServer(host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with server:
        server.add("links.exmpl.com", "AAAA", "2001:db8::1")
        assert server.nameserver.startswith("[::1]:")
        assert answer_text(ask(server, "links.exmpl.com", "AAAA")) == [
            "links.exmpl.com. 300 IN AAAA 2001:db8::1"
        ]


def test_concurrent_changes_and_queries(dns_server: LocalDNSServer) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(200):
                dns_server.add(f"n{i}.exmpl.com", "A", "192.0.2.1")
                dns_server.remove(f"n{i - 1}.exmpl.com")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    thread = threading.Thread(target=writer)
    thread.start()
    for i in range(200):
        assert ask(dns_server, f"n{i}.exmpl.com").rcode() in (
            dns.rcode.NOERROR,
            dns.rcode.NXDOMAIN,
        )
    thread.join()
    assert errors == []
