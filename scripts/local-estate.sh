#!/usr/bin/env bash
# A real estate on one machine, to try a failover that moves real things:
#   - region-b: a PostgreSQL primary (the writer today);
#   - region-a: a streaming replica of it, made with pg_basebackup -R;
#   - a BIND zone, local.test, whose app.local.test answers region-b's address and takes
#     dynamic updates signed with a TSIG key made here.
# It writes workflows/ (a workflow, a group `local` and a targets.yaml for these servers;
# the URLs and the TSIG secret are read from files with ${file:…}) and prints what to run.
#
#   bash scripts/local-estate.sh          # start (again, from scratch)
#   bash scripts/local-estate.sh stop     # stop everything and remove it
#
# Everything lives in $LIFEBOAT_ESTATE_DIR (default /tmp/lifeboat-local-estate); ports come
# from $LIFEBOAT_ESTATE_PORT (default 25430: +1 primary, +2 replica, +3 DNS; below the
# kernel's ephemeral ports, so that no outgoing connection holds one when it starts).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${LIFEBOAT_ESTATE_DIR:-/tmp/lifeboat-local-estate}"
BASE="${LIFEBOAT_ESTATE_PORT:-25430}"
PRIMARY_PORT=$((BASE + 1))
REPLICA_PORT=$((BASE + 2))
DNS_PORT=$((BASE + 3))

log() { echo "local-estate.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_bin() {
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    [ -n "$found" ] && [ -x "$found/initdb" ] && echo "$found"
}

stop() {
    local bin
    bin="$(pg_bin || true)"
    for node in replica primary; do
        if [ -n "$bin" ] && [ -f "$DIR/$node/postmaster.pid" ]; then
            as_postgres "$bin/pg_ctl" -D "$DIR/$node" -m immediate -w stop >/dev/null 2>&1 || true
        fi
    done
    if [ -f "$DIR/dns/named.pid" ]; then
        kill "$(cat "$DIR/dns/named.pid")" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}

if [ "${1:-}" = stop ]; then
    stop
    log "stopped and removed ${DIR}"
    exit 0
fi

# --- what it needs --------------------------------------------------------------
if ! pg_bin >/dev/null; then
    log "installing PostgreSQL (scripts/postgres.sh)"
    bash "$ROOT/scripts/postgres.sh" >/dev/null
fi
PG="$(pg_bin)" || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
NAMED="$(bash "$ROOT/scripts/bind.sh")"
command -v tsig-keygen >/dev/null || die "tsig-keygen missing (bind9-utils)"

stop
mkdir -p "$DIR/dns" "$DIR/workflows" "$DIR/secrets"
chmod 755 "$DIR"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR"

# --- region-b: the primary; region-a: its replica ---------------------------------
log "PostgreSQL primary on 127.0.0.1:${PRIMARY_PORT}, replica on 127.0.0.1:${REPLICA_PORT}"
as_postgres "$PG/initdb" -D "$DIR/primary" -U postgres --auth=trust --no-sync >/dev/null
# wal_log_hints and wal_keep_size let a re-protect rewind the old writer with pg_rewind.
pg_options() {
    echo "-c listen_addresses=127.0.0.1 -p $1 -k $DIR -c wal_log_hints=on -c wal_keep_size=128MB"
}
start_pg() {
    as_postgres "$PG/pg_ctl" -D "$DIR/$1" -l "$DIR/$1.log" -w -o "$(pg_options "$2")" start >/dev/null
}
start_pg primary "$PRIMARY_PORT"
psql -q -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -c \
    "CREATE TABLE pets (id serial PRIMARY KEY, name text)" >/dev/null
as_postgres "$PG/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres \
    -D "$DIR/replica" -R -X stream >/dev/null
start_pg replica "$REPLICA_PORT"
# A row written after the copy, so the replica has replayed a transaction (its lag is known).
psql -q -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -c "INSERT INTO pets (name) VALUES ('rex')" >/dev/null
for _ in $(seq 1 50); do
    n="$(psql -tA -h 127.0.0.1 -p "$REPLICA_PORT" -U postgres -c 'SELECT count(*) FROM pets' 2>/dev/null || true)"
    [ "$n" = 1 ] && break
    sleep 0.2
done
[ "${n:-0}" = 1 ] || die "the replica did not catch up"

# --- DNS: local.test, updated with a TSIG key ----------------------------------------
log "BIND serving local.test on 127.0.0.1:${DNS_PORT}"
tsig-keygen -a hmac-sha256 lifeboat-key > "$DIR/dns/key.conf"
sed -n 's/.*secret "\(.*\)";.*/\1/p' "$DIR/dns/key.conf" > "$DIR/secrets/tsig"
cat > "$DIR/dns/local.test.zone" <<EOF
\$TTL 60
@ IN SOA ns1.local.test. admin.local.test. 1 3600 600 86400 60
@ IN NS ns1.local.test.
ns1 IN A 127.0.0.1
app IN A 127.0.0.2
EOF
cat > "$DIR/dns/named.conf" <<EOF
options {
    directory "$DIR/dns";
    pid-file "$DIR/dns/named.pid";
    session-keyfile "$DIR/dns/session.key";
    managed-keys-directory "$DIR/dns";
    listen-on port $DNS_PORT { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
};
include "$DIR/dns/key.conf";
zone "local.test" {
    type primary;
    file "$DIR/dns/local.test.zone";
    update-policy { grant lifeboat-key zonesub ANY; };
};
EOF
"$NAMED" -c "$DIR/dns/named.conf" >"$DIR/dns/named.log" 2>&1
for _ in $(seq 1 50); do
    dig @127.0.0.1 -p "$DNS_PORT" +short +tries=1 +time=1 app.local.test A 2>/dev/null | grep -q . && break
    sleep 0.2
done

# --- workflows ------------------------------------------------------------------
echo "postgres://postgres@127.0.0.1:${REPLICA_PORT}/postgres" > "$DIR/secrets/region-a.url"
echo "postgres://postgres@127.0.0.1:${PRIMARY_PORT}/postgres" > "$DIR/secrets/region-b.url"
cat > "$DIR/workflows/local.yaml" <<EOF
# Move the local estate from region-b to region-a: promote the replica (if it loses at most
# 5 s of writes), fence the old writer, point app.local.test at region-a. Three templated
# stages.
name: local-failover
params: { from: region-b, to: region-a }
stages:
  promote-database:
    uses: postgres-promote
    # Measured against the old writer while it answers: more than 5 s of writes lost, after
    # 30 s to catch up, stops at a gate for a person to decide.
    spec: { cluster: "local-\${to}", from: "local-\${from}", max_data_loss: 5s, catchup: 30s }
  demote-database:
    uses: postgres-demote
    after: [promote-database]
    spec: { cluster: "local-\${from}" }
  dial:
    uses: dns-failover
    after: [demote-database]
    spec: { endpoint: app.local.test, region: "\${to}" }
EOF
cat > "$DIR/workflows/local-reprotect.yaml" <<EOF
# After the failover: make region-b's old writer a replica of region-a (pg_rewind, as
# wal_log_hints is on; a clone if the WAL it needs is gone).
name: local-reprotect
params: { from: region-b, to: region-a }
stages:
  reprotect-database:
    agent: database
    spec: { cluster: "local-\${from}", role: replica, source: "local-\${to}" }
    timeout: 10m
EOF
cat > "$DIR/workflows/groups.yaml" <<EOF
# No failback workflow: the failback is worked out from the last failover.
groups:
  local:
    description: The local estate from scripts/local-estate.sh
    workflows: { failover: local-failover, reprotect: local-reprotect }
EOF
cat > "$DIR/workflows/targets.yaml" <<EOF
databases:
  local-region-a:
    provider: postgres
    url: "\${file:$DIR/secrets/region-a.url}"
    data_dir: $DIR/replica
    bin_dir: $PG
    start: ["$PG/pg_ctl", -D, "$DIR/replica", -l, "$DIR/replica.log", -w, -o, "$(pg_options "$REPLICA_PORT")", start]
  local-region-b:
    provider: postgres
    url: "\${file:$DIR/secrets/region-b.url}"
    data_dir: $DIR/primary
    bin_dir: $PG
    start: ["$PG/pg_ctl", -D, "$DIR/primary", -l, "$DIR/primary.log", -w, -o, "$(pg_options "$PRIMARY_PORT")", start]
endpoints:
  app.local.test:
    provider: rfc2136
    server: "127.0.0.1:${DNS_PORT}"
    zone: local.test.
    key: { name: lifeboat-key, algorithm: hmac-sha256, secret: "\${file:$DIR/secrets/tsig}" }
    ttl: 30
    regions:
      region-a: { A: [127.0.0.1] }
      region-b: { A: [127.0.0.2] }
EOF

cat <<EOF
The local estate is up. Region-b's primary writes; app.local.test answers 127.0.0.2.

  export LIFEBOAT_WORKFLOWS=$DIR/workflows
  lifeboat validate
  lifeboat run local --action failover --dry-run    # says what would change
  lifeboat run local --action failover              # moves it
  lifeboat run local --action reprotect             # region-b replicates region-a
  lifeboat plan local --action failback             # worked out from the failover
  lifeboat run local --action failback              # back, losing nothing

Then look:
  dig @127.0.0.1 -p $DNS_PORT +short app.local.test                                        # 127.0.0.1
  psql -h 127.0.0.1 -p $REPLICA_PORT -U postgres -c "INSERT INTO pets (name) VALUES ('ok')"   # the new writer
  psql -h 127.0.0.1 -p $PRIMARY_PORT -U postgres -c "INSERT INTO pets (name) VALUES ('no')"   # read-only now

  bash scripts/local-estate.sh stop
EOF
