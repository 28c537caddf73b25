{{/* Helpers shared by the chart's templates. */}}

{{/* ecklink.name is the chart name, or nameOverride. */}}
{{- define "ecklink.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* ecklink.fullname names the release's objects: the release name, suffixed with the chart name
unless it already contains it. */}}
{{- define "ecklink.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* ecklink.clusterName names cluster-scoped objects: the full name and the release namespace,
so releases in two namespaces do not collide. */}}
{{- define "ecklink.clusterName" -}}
{{- printf "%s-%s" (include "ecklink.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" -}}
{{- end -}}

{{- define "ecklink.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecklink.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* ecklink.labels are the standard labels of every object. */}}
{{- define "ecklink.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ecklink.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: ecklink
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ecklink.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ecklink.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name the existing ServiceAccount the agent runs as" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* ecklink.image is repository@digest, else repository:tag, the tag defaulting to appVersion. */}}
{{- define "ecklink.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* ecklink.validate fails on combinations the schema cannot explain well. */}}
{{- define "ecklink.validate" -}}
{{- if and .Values.rbac.namespaced (not .Values.watchNamespaces) -}}
{{- fail "rbac.namespaced=true requires watchNamespaces: list the namespaces the agent may manage (a Role is created in each)" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "leaderElection.enabled=false requires replicas: 1; replicas without leader election would all act at once" -}}
{{- end -}}
{{- range $key, $url := .Values.elasticsearchEndpoints -}}
{{- if and (hasPrefix "http://" $url) (not $.Values.allowInsecureElasticsearch) -}}
{{- fail (printf "elasticsearchEndpoints[%s]: %s is http: the agent's Elasticsearch credentials would travel in clear; use https, or set allowInsecureElasticsearch=true to accept that" $key $url) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* ecklink.watchRules are the rules in every watched namespace (deploy/helm/rbac.yaml says why
each is there): the Elasticsearch resources the agent wires, the Secrets and ConfigMaps it reads
(ECK's transport and HTTP CAs, its own user) or writes beside them (its own only, but Kubernetes
RBAC cannot tell: their names derive from Elasticsearch names and labels cannot limit a rule), the
Services whose load balancer address it exports, the pods it marks as updated (list, patch), the
Events it records (create only), and
ecklink's own ClusterExports and RemoteClusters. Read and write are separate rules. */}}
{{- define "ecklink.watchRules" -}}
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [create, update, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get]
# Pods of a consuming Elasticsearch: listed by ECK's cluster-name label and patched with the
# annotation ecklink.io/updated-at after a mounted ConfigMap or Secret changed, so the kubelet
# refreshes the files now instead of at its next sync (as ECK's MarkPodsAsUpdated does).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [elasticsearch.k8s.elastic.co]
  resources: [elasticsearches]
  verbs: [list, watch]
- apiGroups: [elasticsearch.k8s.elastic.co]
  resources: [elasticsearches]
  verbs: [get, update]
- apiGroups: [ecklink.io]
  resources: [clusterexports, remoteclusters]
  verbs: [get, list, watch, update]
- apiGroups: [ecklink.io]
  resources: [clusterexports/status, remoteclusters/status]
  verbs: [update]
{{- end -}}

{{/* ecklink.testSelectorLabels select the helm test pod. Its name differs from the agent's, so
the Services, the PodDisruptionBudget and the NetworkPolicy never select it as an agent. */}}
{{- define "ecklink.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ecklink.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
