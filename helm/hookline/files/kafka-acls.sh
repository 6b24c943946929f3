#!/bin/sh
# The Kafka ACLs of one Hookline release: exactly what each component's principal needs on
# the release's topics and groups (docs/SECURITY.md, "Kafka ACLs"), nothing more. One list,
# used by the chart's built-in broker (its kafka-acls Job) and by the local stack
# (dev/components/kafka.sh acls, which dev/run.sh calls for every run's prefix).
#
#   kafka-acls.sh PREFIX ACL_COMMAND...
#
# PREFIX is the release's topic prefix (topicPrefix; empty: the plain topic names).
# ACL_COMMAND runs Kafka's AclCommand (org.apache.kafka.tools.AclCommand) with the
# arguments appended, connected as a principal that may alter ACLs, for example
#   kafka-acls.sh team-a /opt/kafka/bin/kafka-acls.sh --bootstrap-server 127.0.0.1:9094
# Adding an ACL that exists is a no-op, so running it again is harmless.
#
# The principals are User:hookline-operator, User:hookline-handler, User:hookline-consumer
# and User:hookline-console (the SCRAM users of the stack and of the built-in broker).
#
# Not granted, and why:
# - IdempotentWrite on the cluster: since Kafka 3.0 (KIP-679) Write on any topic lets a
#   producer be idempotent (InitProducerId), and every producer here has Write on a topic.
# - Describe: Read and Write imply it (metadata, offsets, watermarks).
set -eu

[ $# -ge 2 ] || {
  echo "usage: kafka-acls.sh PREFIX ACL_COMMAND..." >&2
  exit 2
}
prefix=$1
shift

# The topic and group names of api/src/topics.rs and the chart's hookline.consumerGroup.
name() {
  if [ -n "$prefix" ]; then echo "$prefix.$1"; else echo "$1"; fi
}
events=$(name hookline.events)
dead_letters=$(name hookline.events.dlq)
registry=$(name hookline.registry)
consumer_group=$(name hookline-consumer)
# The five retry tiers (api::topics::RETRY_TIER_COUNT), as --topic arguments.
retry_tiers="--topic $events.retry.0 --topic $events.retry.1 --topic $events.retry.2 --topic $events.retry.3 --topic $events.retry.4"

acl() {
  "$@" >/dev/null
}

# The operator creates every topic of the layout at start and is the registry's only writer.
# shellcheck disable=SC2086 # $retry_tiers is a list of arguments
acl "$@" --add --allow-principal User:hookline-operator --operation Create \
  --topic "$events" --topic "$dead_letters" --topic "$registry" $retry_tiers
acl "$@" --add --allow-principal User:hookline-operator --operation Write --topic "$registry"

# The handlers and the consumers follow the registry, and so does the operator (each
# entry's version must grow past the one on the topic); each reader is in a group of its
# own (hookline-registry-reader-<uuid>, runtime/src/registry_view.rs) that commits nothing.
acl "$@" --add --allow-principal User:hookline-operator --allow-principal User:hookline-handler \
  --allow-principal User:hookline-consumer --operation Read --topic "$registry"
acl "$@" --add --allow-principal User:hookline-operator --allow-principal User:hookline-handler \
  --allow-principal User:hookline-consumer \
  --operation Read --resource-pattern-type prefixed --group hookline-registry-reader-

# The handler produces accepted events; the console replays dead letters onto the same topic.
acl "$@" --add --allow-principal User:hookline-handler --allow-principal User:hookline-console \
  --operation Write --topic "$events"

# The consumer reads events and the retry tiers, writes retries and dead letters, and
# `hookline-consumer replay` (run with the consumer's login) writes the events topic.
# shellcheck disable=SC2086 # $retry_tiers is a list of arguments
acl "$@" --add --allow-principal User:hookline-consumer --operation Read --operation Write \
  --topic "$events" $retry_tiers
acl "$@" --add --allow-principal User:hookline-consumer --operation Write --topic "$dead_letters"
acl "$@" --add --allow-principal User:hookline-consumer --operation Read \
  --group "$consumer_group" --group "$consumer_group.retries"
