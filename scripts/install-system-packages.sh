#!/usr/bin/env bash
# Installs the Debian packages linkcert's demo and tests run against, when they are missing
# (ca-certificates: the public roots uploaded certificates are verified to):
# pebble (a local ACME CA), chromium (the browser the page tests drive), openssl (its
# s_client is the independent TLS client of the edge's cipher-suite tests) and nginx (the origin
# behind the edge in the proxy-mode tests and benchmark; started by them from a temporary
# directory, never as a service) and rabbitmq-server (the broker click and open events are
# published to; the event tests talk to it at 127.0.0.1:5672, and it is started here when
# nothing listens there), knot and knot-dnsutils (Knot DNS: the authoritative server of the DNS-01
# delegation tests, run by them as an unprivileged child from a temporary directory, never as a
# service; kdig helps look at it by hand). With --bench, also
# what the benchmarks compare linkcert with: caddy (the peer, on-demand TLS), haproxy (the
# optional third side of bench/edge.py, --with-haproxy), wrk (the load generator) and hyperfine
# (bench/cli_start.py times the command line's start). Tests never need those, so they are not
# installed for them.
set -euo pipefail
wanted=(pebble chromium openssl nginx rabbitmq-server ca-certificates knot knot-dnsutils)
if [ "${1:-}" = "--bench" ]; then
    wanted+=(caddy wrk haproxy hyperfine)
fi
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# RabbitMQ for the event tests, unless one already listens (a machine that runs it as a service).
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    echo "starting rabbitmq-server"
    $SUDO rabbitmq-server -detached
    for _ in $(seq 60); do
        (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break
        sleep 1
    done
fi
