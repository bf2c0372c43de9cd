# bridge-sidecar image (guide §14, read for Node: see helm/bridge-sidecar/README.md "The image").
#
#   docker build -t bridge-sidecar:0.1.0 .
#   docker run --rm -p 15006:15006 -p 9901:9901 bridge-sidecar:0.1.0            # example policy, upstream 127.0.0.1:9101
#   docker run --rm --cap-add NET_ADMIN --cap-add NET_RAW --user 0 bridge-sidecar:0.1.0 intercept --ports 9101
#
# The base is a digest-free tag that pins the Node major and the Debian release (so the iptables package and
# glibc do not change under us); rebuilds pick up Node 22 LTS patch releases and Debian security fixes. Node 20
# reached end of life in April 2026; the code itself still runs on Node 20 to 24.
# test/k8s/dockerfile.test.ts replays these steps outside Docker; test/k8s/image-podman.test.ts builds this file
# with podman and runs the image as a pod.

# ---- build: compile TypeScript with the dev dependencies --------------------------------------------------
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY cmd ./cmd
COPY lib ./lib
COPY examples ./examples
RUN npm run build

# ---- runtime: production dependencies, the compiled code, iptables for the intercept init step -------------
FROM node:22-bookworm-slim AS runtime
# iptables (nft and legacy backends) for `bridge-sidecar intercept`, run by the chart's init container as root
# with NET_ADMIN/NET_RAW. The sidecar itself never needs it or any capability.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
# MALLOC_ARENA_MAX=2: glibc keeps fewer malloc arenas, so RSS stays close to what the V8 heap and Buffers use.
# Logs are pino JSON lines written synchronously to stdout: unbuffered without any setting (the guide's
# PYTHONUNBUFFERED has no Node equivalent to set). NODE_OPTIONS is left alone: the heap limit follows the
# container's memory limit (Node reads the cgroup limit).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    BRIDGE_SIDECAR_POLICY=/etc/bridge-sidecar/policy.yaml \
    BRIDGE_SIDECAR_ADMIN_PORT=9901
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY examples/policy.yaml /etc/bridge-sidecar/policy.yaml
# uid/gid 1337 (as Istio's proxy): `bridge-sidecar intercept --proxy-uid` defaults to it, so the sidecar's own
# connections to the service are never redirected back to itself. The L3 cache directory is the one the
# default policy names; in Kubernetes it is an emptyDir (the root filesystem is read-only).
RUN groupadd --system --gid 1337 bridge-sidecar \
 && useradd --system --uid 1337 --gid 1337 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin bridge-sidecar \
 && mkdir -p /var/cache/bridge-sidecar /tmp/bridge-sidecar-profiles \
 && chown 1337:1337 /var/cache/bridge-sidecar /tmp/bridge-sidecar-profiles
USER 1337:1337
EXPOSE 15006 9901
# No curl in the slim image: node itself asks the admin port's /healthz (BRIDGE_SIDECAR_ADMIN_PORT if the
# policy moves it). Kubernetes ignores HEALTHCHECK and uses the chart's probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "const p=process.env.BRIDGE_SIDECAR_ADMIN_PORT||9901;require('http').get({host:'127.0.0.1',port:p,path:'/healthz',timeout:4000},r=>process.exit(r.statusCode===200?0:1)).on('timeout',()=>process.exit(1)).on('error',()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/cmd/bridge-sidecar.js"]
CMD ["serve"]
