#!/bin/sh
# Runs one of Kafka's command line classes (what the release's bin/*.sh scripts run).
# Usage: kafka-tool.sh CLASS [ARGS...]
set -eu
class=$1
shift
exec java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "/opt/kafka/libs/*" "$class" "$@"
