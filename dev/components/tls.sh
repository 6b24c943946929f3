#!/usr/bin/env bash
# The stack's own certificate authority and the server certificates of its Kafka broker and
# PostgreSQL, made with the openssl CLI in $TLS_DIR ($DATA_DIR/tls). No daemon.
#
#   tls.sh install   openssl present?
#   tls.sh start     make the CA and server certificates that are missing, expire within a
#                    day or no longer verify against the CA; write the tls env part
#   tls.sh ensure    the same, without the env part (kafka.sh and postgres.sh call it)
#   tls.sh stop      nothing to stop (the files stay, so clients keep trusting the CA)
#   tls.sh status    the CA and each server certificate: valid until when?
#
# Server certificates name IP:127.0.0.1 and DNS:localhost; each key is PKCS#8 PEM (what
# Kafka's PEM key store reads), unencrypted, mode 0600.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

CA_KEY="$TLS_DIR/ca.key"
CA_DAYS=3650
SERVER_DAYS=825
SERVERS=(kafka postgres)

install() {
  command -v openssl >/dev/null || apt_install openssl
  log "openssl: $(openssl version)"
}

# Valid for at least another day.
fresh() { openssl x509 -noout -checkend 86400 -in "$1" >/dev/null 2>&1; }

# Signed by the current CA, for 127.0.0.1 and localhost, as a TLS server, and fresh.
server_ok() {
  local name=$1
  [ -s "$TLS_DIR/$name.key" ] && fresh "$TLS_DIR/$name.pem" &&
    openssl verify -CAfile "$STACK_CA" -purpose sslserver -verify_ip 127.0.0.1 \
      -verify_hostname localhost "$TLS_DIR/$name.pem" >/dev/null 2>&1
}

make_ca() {
  log "creating the stack CA in $TLS_DIR"
  (umask 077 && cd "$TLS_DIR" &&
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key.tmp &&
    openssl req -x509 -new -key ca.key.tmp -sha256 -days "$CA_DAYS" \
      -subj "/CN=Hookline local stack CA ($(hostname))" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem.tmp &&
    chmod 644 ca.pem.tmp && mv ca.key.tmp ca.key && mv ca.pem.tmp ca.pem) ||
    die "creating the stack CA in $TLS_DIR failed"
}

make_server() {
  local name=$1
  log "creating the $name server certificate in $TLS_DIR (valid $SERVER_DAYS days)"
  (umask 077 && cd "$TLS_DIR" &&
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key.tmp" &&
    openssl req -new -key "$name.key.tmp" -subj "/CN=$name.hookline.local" -out "$name.csr" &&
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,DNS:localhost" \
      "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$name.ext" &&
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey "$CA_KEY" -set_serial "0x$(openssl rand -hex 16)" \
      -days "$SERVER_DAYS" -sha256 -extfile "$name.ext" -out "$name.pem.tmp" 2>/dev/null &&
    chmod 644 "$name.pem.tmp" && rm -f "$name.csr" "$name.ext" &&
    mv "$name.key.tmp" "$name.key" && mv "$name.pem.tmp" "$name.pem") ||
    die "creating the $name server certificate failed"
}

ensure() {
  command -v openssl >/dev/null || install
  mkdir -p "$TLS_DIR"
  if [ ! -s "$CA_KEY" ] || ! fresh "$STACK_CA"; then
    make_ca
  fi
  for name in "${SERVERS[@]}"; do
    server_ok "$name" || make_server "$name"
  done
}

start() {
  ensure
  log "stack CA $STACK_CA (until $(openssl x509 -noout -enddate -in "$STACK_CA" | cut -d= -f2))"
  write_env_part tls "HOOKLINE_STACK_CA=$STACK_CA"
}

status() {
  if [ ! -s "$STACK_CA" ]; then
    echo "tls: no stack CA in $TLS_DIR"
    return 1
  fi
  local rc=0 name
  for name in "${SERVERS[@]}"; do
    server_ok "$name" || { echo "tls: $name certificate missing, expiring or not from the stack CA"; rc=1; }
  done
  [ $rc -eq 0 ] && echo "tls: CA and server certificates in $TLS_DIR (CA until $(openssl x509 -noout -enddate -in "$STACK_CA" | cut -d= -f2))"
  return $rc
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  ensure) ensure ;;
  stop) ;;
  status) status ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
