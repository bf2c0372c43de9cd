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

{{/*
"true" when the sidecar is a native sidecar (an init container with restartPolicy Always), else "".
sidecar.native: auto picks it on Kubernetes >= 1.29 (where SidecarContainers is on by default) and a classic
container before; true forces it (1.28 with the SidecarContainers feature gate), false never.
*/}}
{{- define "bridge-sidecar.native" -}}
{{- $n := .Values.sidecar.native -}}
{{- if eq (toString $n) "auto" -}}
{{- if semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version -}}true{{- end -}}
{{- else if $n -}}
{{- if semverCompare "<1.28-0" .Capabilities.KubeVersion.Version -}}
{{- fail "sidecar.native=true needs Kubernetes >= 1.29 (or 1.28 with the SidecarContainers feature gate); use sidecar.native=auto or false on older clusters" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* "true" when the service's probes are moved to the sidecar's /app-health (its port is intercepted). */}}
{{- define "bridge-sidecar.rewriteProbes" -}}
{{- if eq .Values.interception.mode "iptables" -}}true{{- end -}}
{{- end -}}

{{/*
The service's httpGet probes as the sidecar calls them (BRIDGE_SIDECAR_APP_PROBERS, the format of
lib/k8s/probers.ts): {"<container>/<kind>": {httpGet, port, timeoutSeconds}}. Empty when nothing to rewrite.
*/}}
{{- define "bridge-sidecar.appProbers" -}}
{{- $out := dict -}}
{{- range $kind := list "liveness" "readiness" "startup" -}}
{{- $p := get $.Values.service (printf "%sProbe" $kind) -}}
{{- if and $p (get $p "httpGet") -}}
{{- $port := $p.httpGet.port -}}
{{- if eq (toString $port) "app" -}}{{- $port = $.Values.service.port -}}{{- end -}}
{{- if not (regexMatch "^[0-9]+$" (toString $port)) -}}
{{- fail (printf "service.%sProbe.httpGet.port must be app or a port number (got %v)" $kind $port) -}}
{{- end -}}
{{- $_ := set $out (printf "%s/%s" $.Values.service.name $kind) (dict "httpGet" $p.httpGet "port" (int $port) "timeoutSeconds" (int (default 1 $p.timeoutSeconds))) -}}
{{- end -}}
{{- end -}}
{{- if $out -}}{{- toJson $out -}}{{- end -}}
{{- end -}}

{{/* One of the service's probes, pointed at the sidecar's /app-health when its port is intercepted. */}}
{{- define "bridge-sidecar.appProbe" -}}
{{- $p := deepCopy .probe -}}
{{- if and (include "bridge-sidecar.rewriteProbes" .ctx) (get $p "httpGet") -}}
{{- $_ := set $p "httpGet" (dict "path" (printf "/app-health/%s/%s" .ctx.Values.service.name .kind) "port" (int .ctx.Values.sidecar.adminPort)) -}}
{{- end -}}
{{- toYaml $p -}}
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
{{- $_ := set $server "metrics_listen" (printf "0.0.0.0:%d" (int .Values.sidecar.metricsPort)) -}}
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
  {{- $native := include "bridge-sidecar.native" . }}
  {{- if $native }}
  # A native sidecar: started (startupProbe passed) before the service starts, stopped after it exits.
  restartPolicy: Always
  {{- end }}
  args: ["serve", "--policy", "{{ include "bridge-sidecar.policyDir" . }}/policy.yaml"]
  env:
    - name: BRIDGE_SIDECAR_ADMIN_PORT
      value: {{ .Values.sidecar.adminPort | quote }}
    {{- $probers := include "bridge-sidecar.appProbers" . }}
    {{- if and (include "bridge-sidecar.rewriteProbes" .) $probers }}
    # The service's own probes: the kubelet asks /app-health/... on the admin port and the sidecar calls these
    # directly, so a sidecar that sheds or rate limits never gets a healthy service restarted.
    - name: BRIDGE_SIDECAR_APP_PROBERS
      value: {{ $probers | quote }}
    {{- end }}
    {{- with .Values.redis.passwordSecret.name }}
    # The Redis password from a Secret, never from the policy ConfigMap.
    - name: BRIDGE_SIDECAR_REDIS_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ . }}
          key: {{ $.Values.redis.passwordSecret.key }}
    {{- end }}
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
    - name: metrics
      containerPort: {{ .Values.sidecar.metricsPort }}
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
  {{- if not $native }}
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
  {{- $exclude := concat (list .Values.sidecar.adminPort .Values.sidecar.metricsPort) (.Values.interception.excludePorts | default list) }}
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

{{/* The injection webhook. */}}
{{- define "bridge-sidecar.injectorName" -}}
{{- printf "%s-injector" (include "bridge-sidecar.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bridge-sidecar.injectorImage" -}}
{{- $i := .Values.injector.image | default dict -}}
{{- printf "%s:%s" (default .Values.sidecar.image.repository $i.repository) (default (default .Chart.AppVersion .Values.sidecar.image.tag) $i.tag) -}}
{{- end -}}

{{/* cert-manager makes the serving certificate: forced, or auto when its API is installed. */}}
{{- define "bridge-sidecar.injectorCertManager" -}}
{{- $c := .Values.injector.certManager -}}
{{- if eq (toString $c) "auto" -}}
{{- if .Capabilities.APIVersions.Has "cert-manager.io/v1" -}}true{{- end -}}
{{- else if $c -}}true{{- end -}}
{{- end -}}

{{/* The injection config (lib/k8s/config.ts keys): what the chart knows, then injector.config over it. */}}
{{- define "bridge-sidecar.injectorConfig" -}}
{{- $c := dict "image" (include "bridge-sidecar.image" .) "imagePullPolicy" .Values.sidecar.image.pullPolicy "native" (eq (include "bridge-sidecar.native" .) "true") "listenPort" (int .Values.sidecar.listenPort) "adminPort" (int .Values.sidecar.adminPort) "uid" (int .Values.sidecar.uid) "preStopSleepSeconds" (int .Values.sidecar.preStopSleepSeconds) -}}
{{- toYaml (mergeOverwrite $c (deepCopy (.Values.injector.config | default dict))) -}}
{{- end -}}
