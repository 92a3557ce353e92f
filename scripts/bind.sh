#!/usr/bin/env bash
# Installs (once, from Debian's packages bind9, bind9-utils and bind9-dnsutils) BIND's
# `named`, `tsig-keygen`, `nsupdate` and `dig`. Prints named's path on stdout, e.g.
#   /usr/sbin/named
# progress goes to stderr. Starts no daemon: each test starts a named of its own on a free
# loopback port with a zone and a TSIG key (tests/it/common/dns.rs), and
# scripts/local-estate.sh starts one for a person to try. Safe to run any number of times.
set -euo pipefail

POLICY=/usr/sbin/policy-rc.d

log() { echo "bind.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

named_bin() { command -v named || { [ -x /usr/sbin/named ] && echo /usr/sbin/named; }; }

installed() {
    named_bin >/dev/null 2>&1 && command -v dig >/dev/null 2>&1 \
        && command -v tsig-keygen >/dev/null 2>&1
}

if installed; then
    log "already installed: $(named_bin), $(command -v dig)"
else
    log "installing Debian packages bind9, bind9-utils and bind9-dnsutils"
    export DEBIAN_FRONTEND=noninteractive
    # The package's scripts start named on port 53 unless a policy-rc.d forbids it; tests
    # start their own, so forbid it for the install when the machine has no policy.
    made_policy=
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\n# Written by lifeboat scripts/bind.sh during apt-get install.\nexit 101\n' \
            | as_root tee "$POLICY" >/dev/null
        as_root chmod 755 "$POLICY"
        made_policy=1
        trap 'as_root rm -f "$POLICY"' EXIT
    fi
    rc=0
    as_root apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || rc=$?
    [ "$rc" -ne 0 ] || as_root apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        bind9 bind9-utils bind9-dnsutils >&2 || rc=$?
    if [ -n "$made_policy" ]; then
        as_root rm -f "$POLICY"
        trap - EXIT
    fi
    [ "$rc" -eq 0 ] || die "apt-get failed (exit ${rc})"
    hash -r
    installed || die "named, dig or tsig-keygen still missing after apt-get install"
fi
BIN="$(named_bin)"
log "$("$BIN" -v 2>&1 | head -n1)"
echo "$BIN"
