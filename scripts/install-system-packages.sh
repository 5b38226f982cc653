#!/usr/bin/env bash
# Installs the Debian packages linkcert's demo and tests run against, when they are missing:
# pebble (a local ACME CA), chromium (the browser the page tests drive), openssl (its
# s_client is the independent TLS client of the edge's cipher-suite tests) and nginx (the origin
# behind the edge in the proxy-mode tests and benchmark; started by them from a temporary
# directory, never as a service). With --bench, also
# what the benchmarks compare linkcert with: caddy (the peer, on-demand TLS), haproxy (the
# optional third side of bench/edge.py, --with-haproxy), wrk (the load generator) and hyperfine
# (bench/cli_start.py times the command line's start). Tests never need those, so they are not
# installed for them.
set -euo pipefail
wanted=(pebble chromium openssl nginx)
if [ "${1:-}" = "--bench" ]; then
    wanted+=(caddy wrk haproxy hyperfine)
fi
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
