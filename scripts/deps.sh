#!/usr/bin/env bash
# Installs the Debian packages the toolkit needs, only when something is missing.
# With everything present it runs one dpkg-query and exits: well under a second.
set -euo pipefail

# Build and test needs of every milestone present. Later milestones append theirs here.
# clang-14 + libclang-rt-14-dev: the fuzz variant (libFuzzer ships in clang's runtime
# package), whose targets `make test` runs for a few seconds each. openssl: the e2e tests
# make RS256/ES256 keys and sign tokens with its command at test time. python3-cryptography:
# the TLS tests' certificates, made at test time (e2e/gwtest/certs.py); testssl.sh: the TLS
# listener's protocol, cipher and vulnerability scan; python3-websockets: WebSocket clients.
PKGS=(
  build-essential pkg-config
  libuv1-dev node-llhttp libbearssl-dev libcmocka-dev libyaml-dev libjansson-dev
  python3 python3-pytest
  openssl
  python3-cryptography testssl.sh python3-websockets
  varnish
  clang-14 libclang-rt-14-dev
)
# Extra groups, asked for explicitly: `scripts/deps.sh bench`, `scripts/deps.sh ci`.
# libssl-dev: the TLS load generator (benchmarks/tools/tlsrate.c) is built on OpenSSL.
BENCH_PKGS=(wrk nginx-light libnginx-mod-stream haproxy gnuplot-nox libssl-dev)
# `scripts/deps.sh ci`: what .ci/run uses besides: ccache, so that each stage's fresh clone
# and the full run after them compile each source once per variant (NOTES.md, time budget).
CI_PKGS=(ccache)

want=("${PKGS[@]}")
for group in "$@"; do
  case "$group" in
    bench) want+=("${BENCH_PKGS[@]}") ;;
    ci) want+=("${CI_PKGS[@]}") ;;
    *) echo "deps.sh: unknown group '$group'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to run apt-get" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has empty package lists: update once, then install.
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done" >&2
