{{/* Names, labels and the derived settings every template shares. */}}

{{/* The app name (label app.kubernetes.io/name): nameOverride, else the chart's name. */}}
{{- define "udsink-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object's name: fullnameOverride, else <release>-<name> (just the
     release's name when it already contains the name). */}}
{{- define "udsink-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "udsink-operator.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "udsink-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "udsink-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The selector labels as a label selector string (name=value,...). */}}
{{- define "udsink-operator.selector" -}}
{{- $pairs := list -}}
{{- range $key, $value := include "udsink-operator.selectorLabels" . | fromYaml -}}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{- define "udsink-operator.labels" -}}
{{ include "udsink-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "udsink-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "udsink-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "udsink-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* topologySpreadConstraints as given; one without a labelSelector selects the operator's
     own pods (what spreading the operator means). */}}
{{- define "udsink-operator.spreadConstraints" -}}
{{- $own := dict "matchLabels" (include "udsink-operator.selectorLabels" . | fromYaml) -}}
{{- $constraints := list -}}
{{- range .Values.topologySpreadConstraints -}}
{{- $constraint := deepCopy . -}}
{{- if not (hasKey $constraint "labelSelector") -}}
{{- $_ := set $constraint "labelSelector" $own -}}
{{- end -}}
{{- $constraints = append $constraints $constraint -}}
{{- end -}}
{{- toYaml $constraints -}}
{{- end -}}

{{/* A map without its null entries: a key set to null in a later values file (to unset a
     default, e.g. podSecurityContext.fsGroup) is left out rather than rendered as null. */}}
{{- define "udsink-operator.withoutNulls" -}}
{{- $out := dict -}}
{{- range $key, $value := . -}}
{{- if not (kindIs "invalid" $value) -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- if $out -}}
{{- toYaml $out -}}
{{- end -}}
{{- end -}}

{{/* The namespaces watched in single-namespace mode, as a JSON list (default: the release's). */}}
{{- define "udsink-operator.namespaces" -}}
{{- if .Values.watch.namespaces -}}
{{- toJson .Values.watch.namespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* "true" when replicas elect a leader through kopf peering. */}}
{{- define "udsink-operator.peering" -}}
{{- if gt (int .Values.replicaCount) 1 -}}true{{- end -}}
{{- end -}}

{{/* Combinations the schema cannot express, refused with the keys named. */}}
{{- define "udsink-operator.checks" -}}
{{- range $value := list "commonLabels" "podLabels" -}}
{{- range $key := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "helm.sh/chart" -}}
{{- if hasKey (index $.Values $value) $key -}}
{{- fail (printf "%s sets %s, a label the chart sets itself: remove it (nameOverride changes app.kubernetes.io/name)" $value $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.watch.clusterWide .Values.watch.namespaces -}}
{{- fail (printf "watch.namespaces is %v but watch.clusterWide is true: set watch.clusterWide=false to watch only those namespaces, or leave watch.namespaces empty to watch all" .Values.watch.namespaces) -}}
{{- end -}}
{{- end -}}

{{/* The rules of the operator's Role or ClusterRole: exactly the calls handlers.py and
     cluster.py make, plus what kopf needs to watch and to post events. */}}
{{- define "udsink-operator.namespacedRules" -}}
# UDSinks: watched by kopf; kopf keeps its progress in annotations (patch); the operator
# writes only the status subresource, never the spec.
- apiGroups: ["udsink.dev"]
  resources: ["udsinks"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["udsink.dev"]
  resources: ["udsinks/status"]
  verbs: ["patch"]
# Children carry an ownerReference with blockOwnerDeletion; where the
# OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift, hardened clusters)
# setting it requires update on the owner's finalizers subresource.
- apiGroups: ["udsink.dev"]
  resources: ["udsinks/finalizers"]
  verbs: ["update"]
# Children: compared with a GET, written by server-side apply (patch, and create when absent).
# Deployments are also watched, to derive the UDSink status from them.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "create", "patch"]
# Pods: listed while a UDSink misses ready replicas, to put why its runtime container last
# ended (its termination message) into the UDSink's status; watched (only the UDSinks' own,
# by label) because such a restart changes nothing in the Deployment's status.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
{{- if .Values.secretCheck }}
# Secrets: read only, to check that the keys a UDSink references exist (secretCheck).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
