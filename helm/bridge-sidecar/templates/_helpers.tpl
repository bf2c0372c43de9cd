{{/* Names, labels and the rendered policy. */}}

{{- define "bridge-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bridge-sidecar.fullname" -}}
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

{{- define "bridge-sidecar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bridge-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bridge-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bridge-sidecar.labels" -}}
helm.sh/chart: {{ include "bridge-sidecar.chart" . }}
{{ include "bridge-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mcp-bridge
{{- end -}}

{{- define "bridge-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bridge-sidecar.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bridge-sidecar.image" -}}
{{- printf "%s:%s" .Values.sidecar.image.repository (default .Chart.AppVersion .Values.sidecar.image.tag) -}}
{{- end -}}

{{- define "bridge-sidecar.redisName" -}}
{{- printf "%s-redis" (include "bridge-sidecar.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bridge-sidecar.adminTokenSecret" -}}
{{- default (printf "%s-admin-token" (include "bridge-sidecar.fullname" .)) .Values.adminToken.existingSecret -}}
{{- end -}}

{{/* Where things are mounted in the sidecar container. */}}
{{- define "bridge-sidecar.policyDir" -}}/etc/bridge-sidecar{{- end -}}
{{- define "bridge-sidecar.tokenDir" -}}/var/run/secrets/bridge-sidecar{{- end -}}
{{- define "bridge-sidecar.cacheDir" -}}/var/cache/bridge-sidecar{{- end -}}

{{/*
The policy file: .Values.policy with the keys the chart owns filled in from the other values, so the ports
in the policy and in the pod spec can never disagree.
*/}}
{{- define "bridge-sidecar.policy" -}}
{{- $p := deepCopy (.Values.policy | default dict) -}}
{{- $server := get $p "server" | default dict -}}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.sidecar.listenPort)) -}}
{{- $_ := set $server "admin_listen" (printf "0.0.0.0:%d" (int .Values.sidecar.adminPort)) -}}
{{- if .Values.adminToken.enabled -}}
{{- $_ := set $server "admin_token_file" (printf "%s/%s" (include "bridge-sidecar.tokenDir" .) .Values.adminToken.key) -}}
{{- end -}}
{{- $_ := set $p "server" $server -}}
{{- $upstream := get $p "upstream" | default dict -}}
{{- $_ := set $upstream "url" (printf "http://127.0.0.1:%d" (int .Values.service.port)) -}}
{{- $_ := set $p "upstream" $upstream -}}
{{- $mode := .Values.redis.mode -}}
{{- if ne $mode "none" -}}
{{- $redis := get $p "redis" | default dict -}}
{{- if eq $mode "internal" -}}
{{- $_ := set $redis "url" (printf "redis://%s:6379/0" (include "bridge-sidecar.redisName" .)) -}}
{{- else if eq $mode "external" -}}
{{- if not .Values.redis.url -}}{{- fail "redis.mode=external needs redis.url (redis://host:6379/0)" -}}{{- end -}}
{{- $_ := set $redis "url" .Values.redis.url -}}
{{- else if eq $mode "cluster" -}}
{{- if not .Values.redis.clusterNodes -}}{{- fail "redis.mode=cluster needs redis.clusterNodes (host:port seeds)" -}}{{- end -}}
{{- $_ := set $redis "cluster" .Values.redis.clusterNodes -}}
{{- end -}}
{{- $_ := set $p "redis" $redis -}}
{{- if hasKey $p "cache" -}}
{{- $cache := get $p "cache" | default dict -}}
{{- if not (hasKey $cache "l2") -}}
{{- $_ := set $cache "l2" (dict "size" "2GB" "ttl" "1h" "strategy" "lfu") -}}
{{- end -}}
{{- $_ := set $p "cache" $cache -}}
{{- end -}}
{{- if hasKey $p "rate_limiting" -}}
{{- $rl := get $p "rate_limiting" | default dict -}}
{{- if not (hasKey $rl "scope") -}}{{- $_ := set $rl "scope" "cluster" -}}{{- end -}}
{{- $_ := set $p "rate_limiting" $rl -}}
{{- end -}}
{{- else -}}
{{- $_ := unset $p "redis" -}}
{{- $cache := get $p "cache" | default dict -}}
{{- if hasKey $cache "l2" -}}{{- fail "policy.cache.l2 needs Redis: set redis.mode (internal, external or cluster) or remove cache.l2" -}}{{- end -}}
{{- $rl := get $p "rate_limiting" | default dict -}}
{{- if eq (get $rl "scope" | default "pod") "cluster" -}}{{- fail "policy.rate_limiting.scope=cluster needs Redis: set redis.mode or use scope: pod" -}}{{- end -}}
{{- end -}}
{{- if hasKey $p "cache" -}}
{{- $cache := get $p "cache" | default dict -}}
{{- if hasKey $cache "l3" -}}
{{- $l3 := get $cache "l3" | default dict -}}
{{- $_ := set $l3 "path" (include "bridge-sidecar.cacheDir" .) -}}
{{- $_ := set $cache "l3" $l3 -}}
{{- end -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{/* The sidecar container (the same in native and classic mode, but for restartPolicy and preStop). */}}
{{- define "bridge-sidecar.sidecarContainer" -}}
- name: bridge-sidecar
  image: {{ include "bridge-sidecar.image" . }}
  imagePullPolicy: {{ .Values.sidecar.image.pullPolicy }}
  {{- if .Values.sidecar.native }}
  # A native sidecar: started (startupProbe passed) before the service starts, stopped after it exits.
  restartPolicy: Always
  {{- end }}
  args: ["serve", "--policy", "{{ include "bridge-sidecar.policyDir" . }}/policy.yaml"]
  env:
    - name: BRIDGE_SIDECAR_ADMIN_PORT
      value: {{ .Values.sidecar.adminPort | quote }}
    {{- with .Values.sidecar.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: proxy
      containerPort: {{ .Values.sidecar.listenPort }}
      protocol: TCP
    - name: admin
      containerPort: {{ .Values.sidecar.adminPort }}
      protocol: TCP
  {{- with .Values.sidecar.startupProbe }}
  startupProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.sidecar.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.sidecar.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if not .Values.sidecar.native }}
  lifecycle:
    preStop:
      # Keep proxying while the service drains; SIGTERM (then the sidecar's own drain) comes after.
      exec:
        command: ["sleep", "{{ .Values.sidecar.preStopSleepSeconds }}"]
  {{- end }}
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
  securityContext:
    {{- /* the uid is the one `intercept --proxy-uid` excludes: it always wins */}}
    {{- toYaml (mergeOverwrite (deepCopy .Values.sidecar.securityContext) (dict "runAsUser" .Values.sidecar.uid "runAsGroup" .Values.sidecar.uid)) | nindent 4 }}
  volumeMounts:
    # The ConfigMap as a directory (never subPath): the kubelet swaps the ..data symlink on an edit and the
    # sidecar's watcher sees the new file.
    - name: policy
      mountPath: {{ include "bridge-sidecar.policyDir" . }}
      readOnly: true
    - name: cache
      mountPath: {{ include "bridge-sidecar.cacheDir" . }}
    - name: tmp
      mountPath: /tmp
    {{- if .Values.adminToken.enabled }}
    - name: admin-token
      mountPath: {{ include "bridge-sidecar.tokenDir" . }}
      readOnly: true
    {{- end }}
{{- end -}}

{{/* The init container that installs the iptables rules (interception.mode=iptables). */}}
{{- define "bridge-sidecar.interceptContainer" -}}
- name: intercept
  image: {{ include "bridge-sidecar.image" . }}
  imagePullPolicy: {{ .Values.sidecar.image.pullPolicy }}
  {{- $exclude := prepend (.Values.interception.excludePorts | default list) .Values.sidecar.adminPort }}
  args:
    - intercept
    - --ports
    - {{ .Values.service.port | quote }}
    - --to-port
    - {{ .Values.sidecar.listenPort | quote }}
    - --proxy-uid
    - {{ .Values.sidecar.uid | quote }}
    - --exclude-ports
    - {{ join "," $exclude | quote }}
    {{- if .Values.interception.legacy }}
    - --legacy
    {{- end }}
  resources:
    requests: { cpu: 10m, memory: 32Mi }
    limits: { memory: 128Mi }
  securityContext:
    # Changing the pod's nat table needs root with NET_ADMIN and NET_RAW, for this one short step only.
    runAsUser: 0
    runAsGroup: 0
    runAsNonRoot: false
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities:
      drop: [ALL]
      add: [NET_ADMIN, NET_RAW]
    seccompProfile: { type: RuntimeDefault }
  volumeMounts:
    # iptables-legacy takes /run/xtables.lock; the root filesystem is read-only.
    - name: xtables-lock
      mountPath: /run
{{- end -}}
