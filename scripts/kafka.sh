#!/usr/bin/env bash
# Installs (once, into ~/.cargo/bin) and starts a Kafka-protocol broker (tansu) on
# 127.0.0.1:${LIFEBOAT_KAFKA_PORT:-9092}, in memory. Prints the brokers string on stdout;
# progress goes to stderr. Safe to run again while the broker is up.
set -euo pipefail

PORT="${LIFEBOAT_KAFKA_PORT:-9092}"
BROKERS="127.0.0.1:${PORT}"
LOG="${TMPDIR:-/tmp}/lifeboat-tansu-${PORT}.log"
export PATH="${HOME}/.cargo/bin:${PATH}"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; }

if ! command -v tansu >/dev/null 2>&1; then
    echo "kafka.sh: installing tansu (a Kafka-protocol broker; about 15 minutes on 2 cores)" >&2
    cargo install tansu --features dynostore --locked >&2
fi

if listening; then
    echo "kafka.sh: a broker already listens on ${BROKERS}" >&2
    echo "${BROKERS}"
    exit 0
fi

echo "kafka.sh: starting tansu on ${BROKERS} (log: ${LOG})" >&2
nohup tansu broker \
    --listener-url "tcp://${BROKERS}" \
    --advertised-listener-url "tcp://${BROKERS}" \
    --storage-engine "memory://tansu/" >"${LOG}" 2>&1 &

for _ in $(seq 1 120); do
    if listening; then
        echo "${BROKERS}"
        exit 0
    fi
    sleep 0.5
done
echo "kafka.sh: tansu did not start; its log:" >&2
tail -n 40 "${LOG}" >&2 || true
exit 1
