{{/*
SPDX-License-Identifier: Apache-2.0
Names, labels and the pieces every component shares: the image, the
PostgreSQL login (password only through secretKeyRef) and the names of the
Secrets, whether the operator's (existingSecret) or the chart's own.
*/}}

{{- define "cartwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cartwatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Common labels; call with (dict "ctx" $ "component" "processor"). */}}
{{- define "cartwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: cartwatch
{{ include "cartwatch.selectorLabels" . }}
{{- end }}

{{- define "cartwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cartwatch.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "cartwatch.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The Secret holding the PostgreSQL password, and its key. */}}
{{- define "cartwatch.pgSecretName" -}}
{{- if .Values.postgresql.auth.existingSecret }}
{{- .Values.postgresql.auth.existingSecret }}
{{- else if .Values.postgresql.auth.password }}
{{- printf "%s-postgresql" (include "cartwatch.fullname" .) }}
{{- else }}
{{- fail "postgresql.auth: set existingSecret (a Secret you created) or password (the chart creates the Secret)" }}
{{- end }}
{{- end }}

{{- define "cartwatch.pgSecretKey" -}}
{{- if .Values.postgresql.auth.existingSecret }}
{{- .Values.postgresql.auth.existingSecretKey }}
{{- else }}
{{- "password" }}
{{- end }}
{{- end }}

{{/* The Secret holding the webhook HMAC key, and its key. */}}
{{- define "cartwatch.webhookSecretName" -}}
{{- if .Values.notify.webhookSecret.existingSecret }}
{{- .Values.notify.webhookSecret.existingSecret }}
{{- else if .Values.notify.webhookSecret.value }}
{{- printf "%s-webhook" (include "cartwatch.fullname" .) }}
{{- else }}
{{- fail "notify.webhookSecret: set existingSecret (a Secret you created) or value (the chart creates the Secret)" }}
{{- end }}
{{- end }}

{{- define "cartwatch.webhookSecretKey" -}}
{{- if .Values.notify.webhookSecret.existingSecret }}
{{- .Values.notify.webhookSecret.existingSecretKey }}
{{- else }}
{{- "secret" }}
{{- end }}
{{- end }}

{{/* libpq's environment: the password from the Secret, never a value. */}}
{{- define "cartwatch.pgEnv" -}}
- name: PGHOST
  value: {{ .Values.postgresql.host | quote }}
- name: PGPORT
  value: {{ .Values.postgresql.port | quote }}
- name: PGDATABASE
  value: {{ .Values.postgresql.database | quote }}
- name: PGUSER
  value: {{ .Values.postgresql.user | quote }}
- name: PGSSLMODE
  value: {{ .Values.postgresql.sslmode | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "cartwatch.pgSecretName" . }}
      key: {{ include "cartwatch.pgSecretKey" . }}
{{- end }}

{{/* Rolls the pods when a Secret the chart created changes. */}}
{{- define "cartwatch.secretChecksum" -}}
{{- $s := printf "%s|%s" .Values.postgresql.auth.password .Values.notify.webhookSecret.value }}
{{- if or .Values.postgresql.auth.password .Values.notify.webhookSecret.value }}
checksum/secrets: {{ $s | sha256sum }}
{{- end }}
{{- end }}
