{{/* Names, labels and images shared by every template. */}}

{{- define "hookline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<component>, e.g. hookline-handler. */}}
{{- define "hookline.component" -}}
{{- printf "%s-%s" (include "hookline.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hookline.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "hookline.labels" -}}
{{ include "hookline.selectorLabels" . }}
app.kubernetes.io/part-of: hookline
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* The image of one Hookline binary: {{ include "hookline.image" (dict "root" . "name" "handler") }} */}}
{{- define "hookline.image" -}}
{{- $repo := index .root.Values.image .name -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The trace settings of a traced process (handler, consumer); nothing when
     tracing.otlpEndpoint is empty, and the process exports no spans. */}}
{{- define "hookline.tracingEnv" -}}
{{- with .Values.tracing.otlpEndpoint -}}
- {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: {{ . | quote }}}
- {name: HOOKLINE_TRACE_SAMPLE_RATIO, value: {{ $.Values.tracing.sampleRatio | toString | quote }}}
{{- end -}}
{{- end -}}

{{- define "hookline.kafkaBootstrap" -}}
{{- if .Values.kafka.builtIn -}}
{{- printf "%s:9092" (include "hookline.component" (dict "root" . "name" "kafka")) -}}
{{- else -}}
{{- required "kafka.bootstrapServers is required when kafka.builtIn is false" .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* The Secret and key holding the consumer's DATABASE_URL. */}}
{{- define "hookline.databaseSecretName" -}}
{{- if .Values.postgres.builtIn -}}
{{- include "hookline.component" (dict "root" . "name" "postgres") -}}
{{- else -}}
{{- required "postgres.external.existingSecret is required when postgres.builtIn is false" .Values.postgres.external.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The consumer's own login: consumer.database.existingSecret, else the built-in
     PostgreSQL's hookline_consumer_login, else (an external database without one) the
     owner's DSN, and the consumer migrates at start. */}}
{{- define "hookline.consumerLeastPrivilege" -}}
{{- if or .Values.consumer.database.existingSecret .Values.postgres.builtIn -}}true{{- end -}}
{{- end -}}

{{- define "hookline.consumerDatabaseSecretName" -}}
{{- if .Values.consumer.database.existingSecret -}}
{{- .Values.consumer.database.existingSecret -}}
{{- else -}}
{{- include "hookline.databaseSecretName" . -}}
{{- end -}}
{{- end -}}

{{- define "hookline.consumerDatabaseSecretKey" -}}
{{- if .Values.consumer.database.existingSecret -}}{{ .Values.consumer.database.key }}
{{- else if .Values.postgres.builtIn -}}CONSUMER_DATABASE_URL
{{- else -}}{{ include "hookline.databaseSecretKey" . }}{{- end -}}
{{- end -}}

{{- define "hookline.databaseSecretKey" -}}
{{- if .Values.postgres.builtIn -}}DATABASE_URL{{- else -}}{{ .Values.postgres.external.key }}{{- end -}}
{{- end -}}

{{- define "hookline.publicBaseUrl" -}}
{{- if .Values.operator.publicBaseUrl -}}
{{- .Values.operator.publicBaseUrl -}}
{{- else -}}
{{- $scheme := ternary "https" "http" (gt (len .Values.handler.ingress.tls) 0) -}}
{{- printf "%s://%s" $scheme .Values.handler.ingress.host -}}
{{- end -}}
{{- end -}}

{{- define "hookline.podAnnotations" -}}
{{- if .root.Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* Liveness and readiness on the ops port. */}}
{{- define "hookline.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  periodSeconds: 5
  failureThreshold: 2
{{- end -}}

{{/* The Secret and key holding the console's DATABASE_URL: a login with the role
     hookline_console (read the tables, record replays), not the consumer's. */}}
{{- define "hookline.consoleDatabaseSecretName" -}}
{{- if .Values.console.database.existingSecret -}}
{{- .Values.console.database.existingSecret -}}
{{- else if .Values.postgres.builtIn -}}
{{- include "hookline.component" (dict "root" . "name" "postgres") -}}
{{- else -}}
{{- required "console.database.existingSecret (a login granted hookline_console) is required when postgres.builtIn is false" .Values.console.database.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "hookline.consoleDatabaseSecretKey" -}}
{{- if .Values.console.database.existingSecret -}}{{ .Values.console.database.key }}{{- else -}}CONSOLE_DATABASE_URL{{- end -}}
{{- end -}}

{{/* The prefix of this release's topics and consumer group: topicPrefix, else the
     release name, so two releases on one Kafka share neither work nor registry. */}}
{{- define "hookline.topicPrefix" -}}
{{- .Values.topicPrefix | default .Release.Name -}}
{{- end -}}

{{/* A topic of this release: {{ include "hookline.topic" (dict "root" . "name" "hookline.events") }} */}}
{{- define "hookline.topic" -}}
{{- printf "%s.%s" (include "hookline.topicPrefix" .root) .name -}}
{{- end -}}

{{- define "hookline.consumerGroup" -}}
{{- printf "%s.hookline-consumer" (include "hookline.topicPrefix" .) -}}
{{- end -}}

{{/* How one component reaches Kafka: the bootstrap servers, TLS and its own SASL login
     (keys <component>-username and <component>-password of kafka.security.sasl.existingSecret).
     {{ include "hookline.kafkaEnv" (dict "root" . "name" "handler") }} */}}
{{- define "hookline.kafkaEnv" -}}
{{- $security := .root.Values.kafka.security -}}
- {name: KAFKA_BOOTSTRAP_SERVERS, value: {{ include "hookline.kafkaBootstrap" .root | quote }}}
- {name: KAFKA_SECURITY_PROTOCOL, value: {{ $security.protocol | quote }}}
{{- if ne $security.protocol "plaintext" }}
{{- if $security.tls.caSecret }}
- {name: KAFKA_SSL_CA_LOCATION, value: /etc/hookline/kafka-ca/{{ $security.tls.caKey }}}
{{- end }}
{{- end }}
{{- if eq $security.protocol "sasl_ssl" }}
{{- $secret := required "kafka.security.sasl.existingSecret is required with kafka.security.protocol sasl_ssl" $security.sasl.existingSecret }}
- {name: KAFKA_SASL_MECHANISM, value: {{ $security.sasl.mechanism | quote }}}
- name: KAFKA_SASL_USERNAME
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ printf "%s-username" .name }}}}
- name: KAFKA_SASL_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ printf "%s-password" .name }}}}
{{- end }}
{{- end -}}

{{/* The volume mount and volume of the Kafka CA bundle, when one is given. */}}
{{- define "hookline.kafkaCaMount" -}}
{{- if and (ne .Values.kafka.security.protocol "plaintext") .Values.kafka.security.tls.caSecret }}
- {name: kafka-ca, mountPath: /etc/hookline/kafka-ca, readOnly: true}
{{- end }}
{{- end -}}

{{- define "hookline.kafkaCaVolume" -}}
{{- if and (ne .Values.kafka.security.protocol "plaintext") .Values.kafka.security.tls.caSecret }}
- name: kafka-ca
  secret: {secretName: {{ .Values.kafka.security.tls.caSecret }}, defaultMode: 0444}
{{- end }}
{{- end -}}

{{/* The registry keyring Secret: registryKeys.existingSecret, else the chart's own. */}}
{{- define "hookline.registryKeysSecret" -}}
{{- .Values.registryKeys.existingSecret | default (include "hookline.component" (dict "root" . "name" "registry-keys")) -}}
{{- end -}}
