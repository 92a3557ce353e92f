#!/usr/bin/env bash
# Make a PostgreSQL server available for Lifeboat's tests, idempotently.
#
#   - installs PostgreSQL from Debian's packages if the server is missing
#     (apt-get update + apt-get install -y postgresql, only when needed);
#   - makes sure a Debian cluster listens on 127.0.0.1:5432 and starts it with
#     pg_ctlcluster (works without systemd: pg_ctlcluster only hands over to
#     systemctl when /run/systemd/system exists);
#   - creates/updates the role `lifeboat` (password `lifeboat`, LOGIN, CREATEDB,
#     CREATEROLE: tests create a fresh database per test, and the secrets test
#     a role of its own with a password nothing else uses);
#   - waits until the server accepts TCP connections as that role.
#
# Progress goes to stderr; the only line on stdout is the URL to use:
#   postgres://lifeboat:lifeboat@127.0.0.1:5432/postgres
# so callers can do: URL="$(bash scripts/postgres.sh)".
# Safe to run any number of times, and when PostgreSQL is already running.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
PG_ROLE=lifeboat
PG_PASSWORD=lifeboat
PG_URL="postgres://${PG_ROLE}:${PG_PASSWORD}@${PG_HOST}:${PG_PORT}/postgres"
PG_SOCKET_DIR=/var/run/postgresql
WAIT_SECONDS=${LIFEBOAT_PG_WAIT_SECONDS:-60}

log() { echo "[postgres.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Run a command as root (directly, or through sudo when we are not root).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

# Run a command as the `postgres` OS user, from / (its home may not be our cwd).
as_postgres() {
    if [ "$(id -un)" = postgres ]; then (cd / && "$@")
    elif [ "$(id -u)" -eq 0 ] && command -v runuser >/dev/null 2>&1; then (cd / && runuser -u postgres -- "$@")
    elif [ "$(id -u)" -eq 0 ]; then (cd / && su -s /bin/sh postgres -c "$(printf '%q ' "$@")")
    else (cd / && sudo -n -u postgres "$@")
    fi
}

server_installed() {
    command -v pg_ctlcluster >/dev/null 2>&1 \
        && command -v pg_lsclusters >/dev/null 2>&1 \
        && command -v psql >/dev/null 2>&1 \
        && command -v pg_isready >/dev/null 2>&1 \
        && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# True when the server accepts TCP connections on 127.0.0.1:5432.
tcp_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3 >/dev/null 2>&1; }

# True when the lifeboat role can log in over TCP and has CREATEDB and CREATEROLE.
role_ready() {
    local out
    out="$(PGCONNECT_TIMEOUT=5 psql "$PG_URL" -X -q -A -t -v ON_ERROR_STOP=1 \
        -c 'SELECT rolcreatedb AND rolcreaterole FROM pg_roles WHERE rolname = current_user' 2>/dev/null)" || return 1
    [ "$out" = t ]
}

# --- 1. install -------------------------------------------------------------
if server_installed; then
    log "PostgreSQL server already installed ($(compgen -G '/usr/lib/postgresql/*/bin/postgres' | tr '\n' ' '))"
else
    log "PostgreSQL server not found: installing Debian package 'postgresql'"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get -o DPkg::Lock::Timeout=300 update >&2
    as_root apt-get -o DPkg::Lock::Timeout=300 install -y postgresql >&2
    hash -r
    server_installed || die "PostgreSQL still not installed after apt-get install"
fi

# --- 2. fast path: already running and set up -------------------------------
if tcp_ready && role_ready; then
    log "server already running on ${PG_HOST}:${PG_PORT} and role '${PG_ROLE}' is ready"
    echo "$PG_URL"
    exit 0
fi

# --- 3. make sure a cluster on port 5432 exists and is running ---------------
newest_version="$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sed -E 's#^/usr/lib/postgresql/([^/]+)/.*#\1#' | sort -V | tail -n1)"

# pg_lsclusters columns: Ver Cluster Port Status Owner Datadir Logfile
cluster_line="$(pg_lsclusters --no-header 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print; exit }')" || true
if [ -z "$cluster_line" ]; then
    if tcp_ready; then
        die "something that is not a Debian cluster already listens on ${PG_HOST}:${PG_PORT} and the role '${PG_ROLE}' cannot log in there"
    fi
    if [ -z "$(pg_lsclusters --no-header 2>/dev/null)" ]; then name=main; else name=lifeboat; fi
    log "no cluster on port ${PG_PORT}: creating cluster ${newest_version}/${name}"
    as_root pg_createcluster "$newest_version" "$name" --port "$PG_PORT" >&2
    cluster_line="$(pg_lsclusters --no-header | awk -v p="$PG_PORT" '$3 == p { print; exit }')"
    [ -n "$cluster_line" ] || die "cluster creation did not produce a cluster on port ${PG_PORT}"
fi
read -r c_ver c_name _c_port c_status c_owner _c_data c_log <<<"$cluster_line"
log "using cluster ${c_ver}/${c_name} (owner ${c_owner}, status ${c_status}, log ${c_log})"

# The cluster must listen on 127.0.0.1 (Debian's default 'localhost' does).
listen="$(as_root pg_conftool -s "$c_ver" "$c_name" show listen_addresses 2>/dev/null || true)"
case ",${listen// /}," in
    ,, | *,localhost,* | *,127.0.0.1,* | *,\*,* | *,0.0.0.0,*) ;;
    *)
        log "listen_addresses is '${listen}': setting it to 'localhost'"
        as_root pg_conftool "$c_ver" "$c_name" set listen_addresses localhost >&2
        if [ "$c_status" = online ]; then
            as_root pg_ctlcluster "$c_ver" "$c_name" restart >&2
        fi
        ;;
esac

if [ "$c_status" != online ]; then
    # A postmaster that was killed may linger a few seconds as a zombie until
    # PID 1 reaps it; its lock files then still look live, so retry a few times.
    attempt=1
    while :; do
        log "starting cluster ${c_ver}/${c_name} with pg_ctlcluster (no systemd needed), attempt ${attempt}"
        if as_root pg_ctlcluster "$c_ver" "$c_name" start >&2; then break; fi
        if pg_lsclusters --no-header | awk -v v="$c_ver" -v n="$c_name" '$1 == v && $2 == n && $4 == "online" { f = 1 } END { exit !f }'; then
            log "cluster is online after all"
            break
        fi
        if [ "$attempt" -ge 5 ]; then
            log "pg_ctlcluster start failed; last lines of ${c_log}:"
            tail -n 30 "$c_log" >&2 2>/dev/null || true
            die "could not start PostgreSQL cluster ${c_ver}/${c_name}"
        fi
        attempt=$((attempt + 1))
        sleep 3
    done
fi

# --- 4. wait until it accepts connections ------------------------------------
deadline=$((SECONDS + WAIT_SECONDS))
until tcp_ready; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 30 "$c_log" >&2 2>/dev/null || true
        die "PostgreSQL did not accept connections on ${PG_HOST}:${PG_PORT} within ${WAIT_SECONDS}s"
    fi
    sleep 0.5
done
log "server accepts connections on ${PG_HOST}:${PG_PORT}"

# --- 5. role ----------------------------------------------------------------
if ! role_ready; then
    log "creating/updating role '${PG_ROLE}' (LOGIN, CREATEDB, CREATEROLE)"
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -d postgres >&2 <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '${PG_ROLE}') THEN
        CREATE ROLE ${PG_ROLE} LOGIN CREATEDB CREATEROLE PASSWORD '${PG_PASSWORD}';
    ELSE
        ALTER ROLE ${PG_ROLE} LOGIN CREATEDB CREATEROLE PASSWORD '${PG_PASSWORD}';
    END IF;
END
\$\$;
SQL
fi

deadline=$((SECONDS + WAIT_SECONDS))
until role_ready; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        PGCONNECT_TIMEOUT=5 psql "$PG_URL" -X -c 'select 1' >&2 || true
        die "role '${PG_ROLE}' cannot log in to ${PG_HOST}:${PG_PORT} with CREATEDB and CREATEROLE"
    fi
    sleep 0.5
done
log "ready: role '${PG_ROLE}' logs in over TCP and has CREATEDB and CREATEROLE"
echo "$PG_URL"
