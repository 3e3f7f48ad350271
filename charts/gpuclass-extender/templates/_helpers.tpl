{{/*
Names are fixed, as in manifests/, not derived from the release name: the ClusterRole and
the scheduler's Lease are cluster-wide, so the chart is installed once per cluster.
*/}}

{{/* The Deployment's name, its pods' app.kubernetes.io/name label and ServiceAccount. */}}
{{- define "gpuclass-extender.workload" -}}
{{- if eq .Values.mode "second-scheduler" -}}
{{ .Values.scheduler.name }}
{{- else -}}
gpuclass-extender
{{- end -}}
{{- end -}}

{{/* Labels on every object: manifests/'s part-of, plus helm's. */}}
{{- define "gpuclass-extender.labels" -}}
app.kubernetes.io/part-of: gpuclass-extender
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The selector of the pods (immutable in a Deployment: keep it this small). */}}
{{- define "gpuclass-extender.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpuclass-extender.workload" . }}
{{- end -}}

{{- define "gpuclass-extender.policyConfigMap" -}}
{{ .Values.policy.existingConfigMap | default "gpuclass-policy" }}
{{- end -}}

{{- define "gpuclass-extender.extenderImage" -}}
{{ printf "%s:%s" .Values.extender.image.repository (.Values.extender.image.tag | default .Chart.AppVersion) }}
{{- end -}}

{{/* Every container: non-root, read-only root filesystem, nothing to escalate to. */}}
{{- define "gpuclass-extender.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Placement shared by both modes; the default spreads the replicas over nodes. */}}
{{- define "gpuclass-extender.placement" -}}
affinity:
{{- if .Values.affinity }}
  {{- toYaml .Values.affinity | nindent 2 }}
{{- else }}
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "gpuclass-extender.selectorLabels" . | nindent 12 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The extender container. second-scheduler: the verbs (/filter, /prioritize, /bind, /debug)
only on loopback, for the scheduler beside it. cluster-scheduler: HTTPS on :8443 behind
the Service, and with admissionWebhook.enabled /mutate on a TLS port of its own. Both:
probes and /metrics on a plain-HTTP port of their own (kubelet and Prometheus have no
client certificate), which serves nothing else.
*/}}
{{- define "gpuclass-extender.extenderContainer" -}}
{{- $second := eq .Values.mode "second-scheduler" -}}
- name: extender
  image: {{ include "gpuclass-extender.extenderImage" . }}
  args:
  - serve
  - --policy
  - /etc/gpuclass/policy.yaml
  {{- if $second }}
  - --host
  - 127.0.0.1
  - --port
  - "8888"
  - --scheduler-name
  - {{ .Values.scheduler.name }}
  {{- else }}
  - --host
  - 0.0.0.0
  - --port
  - "8443"
  - --tls-cert
  - /tls/tls.crt
  - --tls-key
  - /tls/tls.key
  {{- if .Values.clusterScheduler.tls.verifyClients }}
  - --client-ca
  - /tls/ca.crt
  {{- end }}
  {{- range .Values.clusterScheduler.schedulerNames }}
  - --scheduler-name
  - {{ . }}
  {{- end }}
  {{- end }}
  - --health-host
  - 0.0.0.0
  - --health-port
  - "8080"
  - --log-format
  - json
  {{- with .Values.extender.logLevel }}
  - --log-level
  - {{ . }}
  {{- end }}
  {{- if not (kindIs "invalid" .Values.extender.maxConcurrentRequests) }}
  - --max-concurrent-requests
  - {{ .Values.extender.maxConcurrentRequests | quote }}
  {{- end }}
  {{- if not (kindIs "invalid" .Values.extender.requestBudgetSeconds) }}
  - --request-budget-seconds
  - {{ .Values.extender.requestBudgetSeconds | quote }}
  {{- end }}
  {{- if not (kindIs "invalid" .Values.extender.maxBodyBytes) }}
  - --max-body-bytes
  - {{ .Values.extender.maxBodyBytes | int64 | quote }}
  {{- end }}
  {{- if and (not $second) .Values.admissionWebhook.enabled }}
  - --admission-port
  - {{ .Values.admissionWebhook.port | quote }}
  - --admission-host
  - 0.0.0.0
  {{- end }}
  {{- range .Values.extender.extraArgs }}
  - {{ . | quote }}
  {{- end }}
  ports:
  {{- if not $second }}
  - name: https
    containerPort: 8443
    protocol: TCP
  {{- end }}
  - name: metrics
    containerPort: 8080
    protocol: TCP
  {{- if and (not $second) .Values.admissionWebhook.enabled }}
  - name: webhook
    containerPort: {{ .Values.admissionWebhook.port }}
    protocol: TCP
  {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: 8080
    initialDelaySeconds: 5
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  # 503 until Nodes and Pods are listed.
  readinessProbe:
    httpGet:
      path: /readyz
      port: 8080
    periodSeconds: 5
    timeoutSeconds: 5
    failureThreshold: 3
  resources:
    {{- toYaml .Values.extender.resources | nindent 4 }}
  securityContext:
    {{- include "gpuclass-extender.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
  # A directory mount (not subPath), so ConfigMap updates reach the running extender.
  - name: policy
    mountPath: /etc/gpuclass
    readOnly: true
  {{- if not $second }}
  - name: tls
    mountPath: /tls
    readOnly: true
  {{- end }}
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/*
The metrics Service's labels, which the ServiceMonitor selects (the verbs' Service has no
component label, so it is not selected).
*/}}
{{- define "gpuclass-extender.metricsLabels" -}}
{{ include "gpuclass-extender.selectorLabels" . }}
app.kubernetes.io/component: metrics
{{- end -}}
