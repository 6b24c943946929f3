#!/usr/bin/env bash
# PostgreSQL for the local stack: Debian's server binaries, a cluster of the stack's own in
# $DATA_DIR/postgres, on 127.0.0.1:$POSTGRES_PORT and a unix socket in $RUN_DIR/postgres
# (the machine's default cluster and /var/run/postgresql are left alone). TCP takes only TLS
# (the stack CA's certificate) with scram-sha-256; the unix socket trusts local users.
#
#   postgres.sh install   apt-get install postgresql-$POSTGRES_MAJOR if its server is missing
#   postgres.sh start     initdb once, start, create role and database hookline (idempotent)
#   postgres.sh stop      fast shutdown (pg_ctl stop -m fast)
#   postgres.sh restart   stop, then start (data kept)
#   postgres.sh status    pg_isready
#
# HOOKLINE_PG_NO_FSYNC=1 at start turns off fsync, synchronous_commit and full_page_writes
# (faster, and a crash of the machine may corrupt the cluster); by default they keep
# PostgreSQL's defaults.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

PG_BIN="/usr/lib/postgresql/$POSTGRES_MAJOR/bin"
PG_OS_USER=postgres # PostgreSQL refuses to run as root; as another user it runs as that user.
# Clients verify the server against the stack CA (tls.sh), by the name 127.0.0.1.
TLS_QUERY="sslmode=verify-full&sslrootcert=$STACK_CA"
DATABASE_URL="postgres://hookline:hookline@127.0.0.1:$POSTGRES_PORT/hookline?$TLS_QUERY"
# The console's login: the group role hookline_console only, which the consumer's migrations
# grant reading the tables and recording replays (hookline may not create roles itself).
CONSOLE_DATABASE_URL="postgres://hookline_console_login:hookline-console@127.0.0.1:$POSTGRES_PORT/hookline?$TLS_QUERY"
# The consumer's login, likewise: the group role hookline_consumer only.
CONSUMER_DATABASE_URL="postgres://hookline_consumer_login:hookline-consumer@127.0.0.1:$POSTGRES_PORT/hookline?$TLS_QUERY"
PGDATA_DIR="$DATA_DIR/postgres"
PG_SOCKET_DIR="$RUN_DIR/postgres"
# As root, the cluster belongs to the postgres user, who may not be able to traverse the
# checkout's path (a clone under /root, say). Then the cluster lives in a directory of
# this stack's own under /var/tmp instead, named after the stack directory.
if [ "$(id -u)" -eq 0 ] && id "$PG_OS_USER" >/dev/null 2>&1 &&
  ! runuser -u "$PG_OS_USER" -- test -x "$STACK_DIR" 2>/dev/null; then
  pg_home="/var/tmp/hookline-pg-$(printf '%s' "$STACK_DIR" | sha256sum | cut -c1-12)"
  mkdir -p "$pg_home"
  chmod 755 "$pg_home"
  PGDATA_DIR="$pg_home/data"
  PG_SOCKET_DIR="$pg_home/socket"
fi

# Runs a command as the user that owns the cluster, from a directory that user can read.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

install() {
  if [ -x "$PG_BIN/postgres" ]; then
    log "postgresql $POSTGRES_MAJOR server already installed ($PG_BIN)"
    return 0
  fi
  apt_install "postgresql-$POSTGRES_MAJOR"
  [ -x "$PG_BIN/postgres" ] || die "postgresql-$POSTGRES_MAJOR installed but $PG_BIN/postgres is missing"
}

prepare_dirs() {
  mkdir -p "$PGDATA_DIR" "$PG_SOCKET_DIR"
  chmod 700 "$PGDATA_DIR" "$PG_SOCKET_DIR"
  if [ "$(id -u)" -eq 0 ]; then
    id "$PG_OS_USER" >/dev/null 2>&1 || die "no system user $PG_OS_USER (it comes with postgresql-common)"
    chown "$PG_OS_USER:" "$PGDATA_DIR" "$PG_SOCKET_DIR"
    as_pg test -w "$PGDATA_DIR" ||
      die "user $PG_OS_USER cannot reach $PGDATA_DIR (a parent directory is closed to it); set HOOKLINE_STACK_DIR to a path it can traverse"
  fi
  local socket="$PG_SOCKET_DIR/.s.PGSQL.$POSTGRES_PORT"
  [ ${#socket} -lt 108 ] || die "socket path $socket is too long for a unix socket; set HOOKLINE_STACK_DIR to a shorter path"
}

init_once() {
  [ -f "$PGDATA_DIR/PG_VERSION" ] && return 0
  log "initdb $PGDATA_DIR"
  as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >>"$LOG_DIR/postgres-initdb.log" 2>&1 ||
    die "initdb failed, see $LOG_DIR/postgres-initdb.log"
  echo "include 'hookline.conf'" >>"$PGDATA_DIR/postgresql.conf"
}

# The server's certificate and key, copied into the data dir: the postgres user may not reach
# $TLS_DIR, and PostgreSQL wants the key owned by it with mode 0600.
copy_tls_files() {
  # `command`: install() here is this script's subcommand.
  command install -m 600 "$TLS_DIR/postgres.key" "$PGDATA_DIR/hookline-server.key"
  command install -m 644 "$TLS_DIR/postgres.pem" "$PGDATA_DIR/hookline-server.pem"
  command install -m 644 "$STACK_CA" "$PGDATA_DIR/hookline-ca.pem"
  [ "$(id -u)" -ne 0 ] ||
    chown "$PG_OS_USER:" "$PGDATA_DIR/hookline-server.key" "$PGDATA_DIR/hookline-server.pem" "$PGDATA_DIR/hookline-ca.pem"
}

# Settings of the stack, rewritten on every start so a changed port or flag applies.
write_config() {
  copy_tls_files
  {
    echo "# Written by dev/components/postgres.sh on every start; edit the script, not this file."
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $POSTGRES_PORT"
    echo "unix_socket_directories = '$PG_SOCKET_DIR'"
    echo "max_connections = 200"
    echo "ssl = on"
    echo "ssl_cert_file = '$PGDATA_DIR/hookline-server.pem'"
    echo "ssl_key_file = '$PGDATA_DIR/hookline-server.key'"
    echo "ssl_ca_file = '$PGDATA_DIR/hookline-ca.pem'"
    echo "log_line_prefix = '%m [%p] %q%u@%d '"
    # Sized for a day of traffic rather than PostgreSQL's small defaults: a million-event
    # drain writes ~2 GB of WAL, and with max_wal_size 1GB that forced a checkpoint every
    # few hundred thousand rows, each followed by full-page images (more WAL, slower
    # inserts). Checkpoints are logged so a latency spike can be matched against them.
    echo "shared_buffers = 512MB"
    echo "wal_buffers = 16MB"
    echo "max_wal_size = 8GB"
    echo "checkpoint_timeout = 15min"
    echo "checkpoint_completion_target = 0.9"
    echo "wal_compression = lz4"
    # WAL segments kept for reuse after a checkpoint. With the default (80MB) a burst (a
    # backlog drained after an outage) creates fresh 16 MB segments, and the committing
    # session zero-fills each one inside its commit: profiled at a sixth of the inserting
    # backends' time in a drain. Renaming a kept segment costs nothing.
    echo "min_wal_size = 2GB"
    echo "log_checkpoints = on"
    if [ "${HOOKLINE_PG_NO_FSYNC:-0}" = 1 ]; then
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
    fi
  } >"$PGDATA_DIR/hookline.conf"
  # Over TCP only TLS with a password; the unix socket (the admin psql here) trusts.
  cat >"$PGDATA_DIR/pg_hba.conf" <<'HBA'
# Written by dev/components/postgres.sh on every start; edit the script, not this file.
# TYPE     DATABASE     USER  ADDRESS       METHOD
local      all          all                 trust
local      replication  all                 trust
hostssl    all          all   127.0.0.1/32  scram-sha-256
hostssl    replication  all   127.0.0.1/32  scram-sha-256
hostnossl  all          all   127.0.0.1/32  reject
hostnossl  all          all   0.0.0.0/0     reject
hostnossl  all          all   ::/0          reject
HBA
  [ "$(id -u)" -ne 0 ] || chown "$PG_OS_USER:" "$PGDATA_DIR/hookline.conf" "$PGDATA_DIR/pg_hba.conf"
}

# A postmaster on our data dir, whoever started it.
cluster_running() { as_pg "$PG_BIN/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1; }

# The started process is alive. (Not daemon_running: right after start_daemon the child
# may not have called setsid yet, so its session id is not yet its pid.)
pid_alive() {
  local pid
  pid=$(cat "$RUN_DIR/postgres.pid" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

ready() {
  if ! pid_alive; then
    echo "postgres exited during startup; last lines of $LOG_DIR/postgres.log:" >&3
    tail -n 30 "$LOG_DIR/postgres.log" >&3
    exit 1
  fi
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -d postgres
}

psql_admin() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$POSTGRES_PORT" -U postgres -d postgres
}

create_role_and_database() {
  # CREATEDB so tests can make throw-away databases (sqlx::test and the like).
  psql_admin >/dev/null <<'SQL'
SELECT 'CREATE ROLE hookline' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline') \gexec
ALTER ROLE hookline LOGIN CREATEDB PASSWORD 'hookline';
SELECT 'CREATE DATABASE hookline OWNER hookline' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'hookline') \gexec
SELECT 'CREATE ROLE hookline_console NOLOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline_console') \gexec
SELECT 'CREATE ROLE hookline_console_login IN ROLE hookline_console' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline_console_login') \gexec
ALTER ROLE hookline_console_login LOGIN PASSWORD 'hookline-console';
SELECT 'CREATE ROLE hookline_consumer NOLOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline_consumer') \gexec
SELECT 'CREATE ROLE hookline_consumer_login IN ROLE hookline_consumer' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline_consumer_login') \gexec
ALTER ROLE hookline_consumer_login LOGIN PASSWORD 'hookline-consumer';
SQL
}

start() {
  [ -x "$PG_BIN/postgres" ] || install
  bash "$DEV_DIR/components/tls.sh" ensure
  prepare_dirs
  init_once
  write_config
  if ! daemon_running postgres; then
    if cluster_running; then
      log "a postgres not started by this script runs on $PGDATA_DIR; stopping it first"
      as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 60 >&2
    fi
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" &&
      die "something else answers on 127.0.0.1:$POSTGRES_PORT"
    if [ "$(id -u)" -eq 0 ]; then
      # setpriv execs (runuser would stay as the parent), so the pid file names the postmaster.
      start_daemon postgres setpriv --reuid="$PG_OS_USER" --regid="$PG_OS_USER" --init-groups -- \
        "$PG_BIN/postgres" -D "$PGDATA_DIR"
    else
      start_daemon postgres "$PG_BIN/postgres" -D "$PGDATA_DIR"
    fi
    exec 3>&2
    wait_for "postgres accepts connections on 127.0.0.1:$POSTGRES_PORT" 60 ready
  else
    log "postgres already running (pid $(cat "$RUN_DIR/postgres.pid")); reloading its configuration"
    as_pg "$PG_BIN/pg_ctl" reload -D "$PGDATA_DIR" -s >&2
  fi
  create_role_and_database
  write_env_part postgres \
    "DATABASE_URL=$DATABASE_URL" \
    "CONSOLE_DATABASE_URL=$CONSOLE_DATABASE_URL" \
    "CONSUMER_DATABASE_URL=$CONSUMER_DATABASE_URL" \
    "PG_BIN=$PG_BIN" \
    "POSTGRES_PORT=$POSTGRES_PORT"
}

stop() {
  if [ -x "$PG_BIN/pg_ctl" ] && [ -f "$PGDATA_DIR/postmaster.pid" ] && cluster_running; then
    if as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 60 >/dev/null; then
      # pg_ctl returns once postmaster.pid is gone, a moment before the process exits.
      for _ in $(seq 50); do pid_alive || break; sleep 0.1; done
      log "postgres stopped"
    else
      log "pg_ctl stop failed; signalling the postmaster"
    fi
  fi
  stop_daemon postgres 30 # removes the pid file; signals only if the postmaster is still there
}

status() {
  if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -d postgres; then
    echo "postgres: running (pid $(cat "$RUN_DIR/postgres.pid" 2>/dev/null || echo '?'), 127.0.0.1:$POSTGRES_PORT)"
  elif daemon_running postgres; then
    echo "postgres: running (pid $(cat "$RUN_DIR/postgres.pid")) but not accepting connections"
    return 1
  else
    echo "postgres: stopped"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status) status ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
