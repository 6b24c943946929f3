#!/bin/sh
# Starts a KRaft Kafka broker configured from the environment, as the apache/kafka image is:
# every KAFKA_FOO_BAR variable becomes foo.bar in server.properties (___ stands for "-" and
# __ for "_"); CLUSTER_ID formats the log directory on first start.
set -eu
: "${CLUSTER_ID:?CLUSTER_ID must be set}"
: "${KAFKA_LOG_DIRS:?KAFKA_LOG_DIRS must be set}"
config=/opt/kafka/config/server.properties

env | sort | while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_JVM_PERFORMANCE_OPTS) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=$(printf '%s' "${name#KAFKA_}" | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g' | tr '[:upper:]' '[:lower:]')
  printf '%s=%s\n' "$key" "$value"
done >"$config"

classpath="/opt/kafka/libs/*"
java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$classpath" kafka.tools.StorageTool \
  format --ignore-formatted -t "$CLUSTER_ID" -c "$config"
# shellcheck disable=SC2086 # the options are a list of words
exec java ${KAFKA_HEAP_OPTS:--Xmx1g -Xms1g} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20} \
  ${KAFKA_OPTS:-} -Dorg.slf4j.simpleLogger.defaultLogLevel=info -cp "$classpath" kafka.Kafka "$config"
