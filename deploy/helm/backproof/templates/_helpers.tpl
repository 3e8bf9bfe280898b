{{- define "backproof.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "backproof.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "backproof.labels" -}}
{{ include "backproof.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "backproof.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "backproof.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "backproof.sandboxNamespace" -}}
{{- default .Release.Namespace .Values.sandboxNamespace -}}
{{- end -}}

{{- define "backproof.secretName" -}}
{{- default (include "backproof.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* The daemon's config: the user's, with what running in a Pod needs. */}}
{{- define "backproof.config" -}}
{{- $c := deepCopy .Values.config -}}
{{- $_ := set $c "listen" (printf "%s:%d" .Values.listenAddress (int .Values.port)) -}}
{{- $sb := default dict $c.sandbox -}}
{{- $_ = set $sb "driver" (default "kubernetes" $sb.driver) -}}
{{- $k := default dict $sb.kubernetes -}}
{{- $_ = set $k "namespace" (default (include "backproof.sandboxNamespace" .) $k.namespace) -}}
{{- $_ = set $k "client_labels" (default (dict "app.kubernetes.io/name" .Chart.Name "app.kubernetes.io/instance" .Release.Name) $k.client_labels) -}}
{{- $_ = set $sb "kubernetes" $k -}}
{{- $_ = set $c "sandbox" $sb -}}
{{- toYaml $c -}}
{{- end -}}

{{/* Probes go to the Pod's address unless the daemon listens on one of its own. */}}
{{- define "backproof.probeHost" -}}
{{- if ne .Values.listenAddress "0.0.0.0" }}, host: {{ .Values.listenAddress }}{{ end -}}
{{- end -}}
