#!/usr/bin/env bash
# Installs (once, from Debian's packages prometheus-alertmanager and prometheus) Alertmanager,
# amtool and promtool, and checks alertmanager/alertmanager.yml and alertmanager/rules.yml
# (and their unit tests) with them. Prints the Alertmanager binary's path on stdout, e.g.
#   /usr/bin/prometheus-alertmanager
# progress goes to stderr. Starts no daemon: each test starts an Alertmanager of its own
# (tests/it/common/alertmanager.rs). Safe to run any number of times.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG="${ROOT}/alertmanager/alertmanager.yml"
RULES="${ROOT}/alertmanager/rules.yml"
RULE_TESTS="${ROOT}/alertmanager/rules.test.yml"
POLICY=/usr/sbin/policy-rc.d

log() { echo "alertmanager.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Run a command as root (directly, or through sudo when we are not root).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

# Debian names the binary prometheus-alertmanager; upstream's tarball, alertmanager.
alertmanager_bin() { command -v prometheus-alertmanager || command -v alertmanager; }

installed() {
    alertmanager_bin >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 \
        && command -v promtool >/dev/null 2>&1
}

# PIDs of the packages' daemons (the kernel cuts a command name to 15 characters).
daemons() { pgrep -x 'prometheus|prometheus-aler|alertmanager' 2>/dev/null | sort || true; }

# --- 1. install -------------------------------------------------------------
if installed; then
    log "already installed: $(alertmanager_bin), $(command -v amtool), $(command -v promtool)"
else
    log "installing Debian packages prometheus-alertmanager and prometheus (for promtool)"
    export DEBIAN_FRONTEND=noninteractive
    # The packages' maintainer scripts start (and, under systemd, enable) their daemons
    # unless a policy-rc.d forbids it; tests need only the binaries, so forbid it for the
    # duration of the install when the machine has no policy of its own.
    made_policy=
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\n# Written by lifeboat scripts/alertmanager.sh during apt-get install.\nexit 101\n' \
            | as_root tee "$POLICY" >/dev/null
        as_root chmod 755 "$POLICY"
        made_policy=1
        trap 'as_root rm -f "$POLICY"' EXIT
    fi
    before="$(daemons)"
    rc=0
    as_root apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || rc=$?
    [ "$rc" -ne 0 ] || as_root apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        prometheus-alertmanager prometheus >&2 || rc=$?
    if [ -n "$made_policy" ]; then
        as_root rm -f "$POLICY"
        trap - EXIT
    fi
    # A machine whose own policy lets the daemons start: stop those this install started,
    # so that nothing of ours is left running. (In a container without an init system the
    # init scripts start them and then report failure, which fails the install too.)
    for pid in $(comm -13 <(echo "$before") <(daemons)); do
        log "stopping daemon ${pid} ($(ps -o args= -p "$pid" 2>/dev/null || true)) started by the install"
        as_root kill "$pid" 2>/dev/null || true
    done
    [ "$rc" -eq 0 ] || die "apt-get failed (exit ${rc}); with a ${POLICY} that allows starting services, the packages' init scripts may fail here"
    hash -r
    installed || die "prometheus-alertmanager, amtool or promtool still missing after apt-get install"
fi
BIN="$(alertmanager_bin)"
log "$("$BIN" --version 2>&1 | head -n1)"
log "$(promtool --version 2>&1 | head -n1)"

# --- 2. check the repository's configuration and rules ------------------------
log "amtool check-config ${CONFIG}"
amtool check-config "$CONFIG" >&2 || die "amtool rejects ${CONFIG}"
log "promtool check rules ${RULES}"
promtool check rules "$RULES" >&2 || die "promtool rejects ${RULES}"
log "promtool test rules ${RULE_TESTS}"
promtool test rules "$RULE_TESTS" >&2 || die "the alerting rules fail their unit tests (${RULE_TESTS})"

echo "$BIN"
