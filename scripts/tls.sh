#!/usr/bin/env bash
# Installs (once, from Debian's packages) what the TLS tests need: stunnel4, the TLS front
# the Kafka security tests put before the test broker, and openssl, which makes their test
# CA and certificates; and the headers librdkafka's TLS is built against (libssl-dev,
# pkg-config). Prints stunnel's path on stdout; progress goes to stderr. Starts nothing:
# each test starts the fronts it needs (tests/it/common/kafka_secure.rs). Safe to run again.
set -euo pipefail

log() { echo "tls.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else log "ERROR: need root (or sudo) to run: $*"; exit 1
    fi
}

missing=()
command -v stunnel4 >/dev/null 2>&1 || [ -x /usr/bin/stunnel4 ] || missing+=(stunnel4)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)

if [ ${#missing[@]} -eq 0 ]; then
    log "already installed: stunnel4, openssl, pkg-config, libssl-dev"
else
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq >&2
    as_root apt-get install -y -qq "${missing[@]}" >&2
fi
command -v stunnel4 || echo /usr/bin/stunnel4
