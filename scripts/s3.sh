#!/usr/bin/env bash
# Installs (once, with pip, into a venv under ~/.cache) and starts an S3-compatible test server (moto) on
# 127.0.0.1:${LIFEBOAT_S3_PORT:-5055}. Prints its URL on stdout; progress goes to stderr.
# The fault tests keep a private broker's data in it, so that the broker can restart.
# Safe to run again while the server is up.
set -euo pipefail

PORT="${LIFEBOAT_S3_PORT:-5055}"
URL="http://127.0.0.1:${PORT}"
LOG="${TMPDIR:-/tmp}/lifeboat-moto-${PORT}.log"
MOTO="moto[server]==5.2.1"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; }

# A virtual environment of its own: Debian's Python refuses system-wide pip installs.
VENV="${LIFEBOAT_S3_VENV:-${HOME}/.cache/lifeboat/moto}"
if [ ! -x "${VENV}/bin/moto_server" ]; then
    echo "s3.sh: installing ${MOTO} into ${VENV}" >&2
    if ! python3 -m venv "${VENV}" >&2; then
        echo "s3.sh: python3 cannot make a venv; installing python3-venv" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
        python3 -m venv "${VENV}" >&2
    fi
    "${VENV}/bin/python" -m pip install --quiet "${MOTO}" >&2
fi

if listening; then
    echo "s3.sh: something already listens on ${URL}" >&2
    echo "${URL}"
    exit 0
fi

echo "s3.sh: starting moto_server on ${URL} (log: ${LOG})" >&2
nohup "${VENV}/bin/moto_server" -H 127.0.0.1 -p "${PORT}" >"${LOG}" 2>&1 &

for _ in $(seq 1 120); do
    if listening; then
        echo "${URL}"
        exit 0
    fi
    sleep 0.5
done
echo "s3.sh: moto_server did not start; its log:" >&2
tail -n 40 "${LOG}" >&2 || true
exit 1
