#!/usr/bin/env bash
# Installs (once, from Debian's packages chromium and chromium-driver) the browser the
# console's tests drive. Prints chromedriver's path on stdout, e.g.
#   /usr/bin/chromedriver
# progress goes to stderr. Starts nothing: the test starts its own chromedriver on a free
# loopback port, and chromedriver its own headless chromium. Safe to run any number of times.
set -euo pipefail

log() { echo "browser.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

installed() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

if installed; then
    log "already installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
else
    log "installing Debian packages chromium and chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q >&2 || log "apt-get update failed; trying the install anyway"
    as_root apt-get install -y -q chromium chromium-driver >&2
fi
installed || die "chromium or chromedriver is missing after the install"
/usr/bin/chromedriver --version >&2
echo /usr/bin/chromedriver
