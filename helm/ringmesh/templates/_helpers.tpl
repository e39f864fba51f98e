{{/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */}}
{{- define "ringmesh.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ringmesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ringmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ringmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ringmesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ringmesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ringmesh
{{- end -}}

{{- define "ringmesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ringmesh.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ringmesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The pin dir the daemon (and later the sync container) share: ringmeshd's default,
on the node's bpffs so that pins outlive the pod.
*/}}
{{- define "ringmesh.pinDir" -}}/sys/fs/bpf/ringmesh{{- end -}}

{{/*
ringmeshd's command line. Only flags this release's daemon parses (tests/helm checks
every rendered argument with `ringmeshd ARGS --help`, which validates each value).
*/}}
{{- define "ringmesh.daemonArgs" -}}
- --cgroup
- {{ printf "/host/cgroup2/%s" (trimPrefix "/" .Values.podsCgroup) | quote }}
- --include-ip-ranges
- {{ join "," .Values.includeIPRanges | quote }}
{{- with .Values.excludeIPRanges }}
- --exclude-ip-ranges
- {{ join "," . | quote }}
{{- end }}
{{- with .Values.excludePorts }}
- --exclude-ports
- {{ join "," . | quote }}
{{- end }}
{{- if .Values.workers }}
- --workers
- {{ int .Values.workers | toString | quote }}
{{- end }}
{{- if .Values.statsKeys }}
- --stats-keys
- {{ int .Values.statsKeys | toString | quote }}
{{- end }}
{{- if .Values.breakerPools }}
- --breaker-pools
- {{ int .Values.breakerPools | toString | quote }}
{{- end }}
{{- if .Values.breakerHosts }}
- --breaker-hosts
- {{ int .Values.breakerHosts | toString | quote }}
{{- end }}
{{- if .Values.maxMirrors }}
- --max-mirrors
- {{ int .Values.maxMirrors | toString | quote }}
{{- end }}
- --pod-gateway
- {{ .Values.podGateway | quote }}
- --pin-dir
- {{ include "ringmesh.pinDir" . | quote }}
- --metrics-listen
- {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
- --drain-timeout
- {{ int .Values.drainTimeout | toString | quote }}
{{- with .Values.tracing.zipkinURL }}
- --zipkin-url
- {{ . | quote }}
{{- end }}
{{- if not (kindIs "invalid" .Values.tracing.sampling) }}
- --trace-sampling
- {{ .Values.tracing.sampling | toString | quote }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The `ringmesh sync` container's arguments: the daemon's pin dir and pods' cgroup. */}}
{{- define "ringmesh.syncArgs" -}}
- --pin-dir
- {{ include "ringmesh.pinDir" . | quote }}
- sync
- --node-name
- $(NODE_NAME)
- --domain
- {{ .Values.sync.clusterDomain | quote }}
- --cgroup
- {{ printf "/host/cgroup2/%s" (trimPrefix "/" .Values.podsCgroup) | quote }}
{{- range .Values.sync.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
AppArmor: the securityContext field from Kubernetes 1.30 on, the annotation (which
kubelets before 1.30 read) below it. Non-empty when the field is to be rendered.
*/}}
{{- define "ringmesh.appArmorField" -}}
{{- if and .Values.securityContext.appArmorProfile.type (semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version) -}}yes{{- end -}}
{{- end -}}

{{- define "ringmesh.appArmorAnnotation" -}}
{{- $p := .Values.securityContext.appArmorProfile -}}
{{- if eq (toString $p.type) "Unconfined" -}}unconfined
{{- else if eq (toString $p.type) "RuntimeDefault" -}}runtime/default
{{- else if eq (toString $p.type) "Localhost" -}}{{ printf "localhost/%s" (required "securityContext.appArmorProfile.localhostProfile is required with type Localhost" $p.localhostProfile) }}
{{- end -}}
{{- end -}}

{{/* Values this release cannot honour fail the install with the reason. */}}
{{- define "ringmesh.validate" -}}
{{- if lt (int .Values.terminationGracePeriodSeconds) (add (int .Values.drainTimeout) 5 | int) -}}
{{- fail (printf "terminationGracePeriodSeconds: %d does not outlast drainTimeout %d (give at least drainTimeout + 5): the kubelet would kill ringmeshd in the middle of its drain" (int .Values.terminationGracePeriodSeconds) (int .Values.drainTimeout)) -}}
{{- end -}}
{{- if eq (int .Values.metrics.port) 15001 -}}
{{- fail "metrics.port: 15001 is the proxy's listener port" -}}
{{- end -}}
{{- end -}}
