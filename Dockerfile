# The gateway's image, for docker-compose.yml and deploy/kubernetes/: `docker build -t sinch-stream-gateway .`
# A builder stage compiles the data plane (Cython, C compiler); the image itself carries no compiler.
# The base is pinned to a Python release and a Debian release: upgrading it is a commit. Add the digest
# (python:...@sha256:...) in your own build for byte-for-byte reproducible images.
FROM python:3.11.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="sinch-stream-gateway" \
      org.opencontainers.image.description="Bridges Sinch Voice connectStream websockets to RTP media services" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.11-slim-bookworm"
COPY --from=build /wheels /wheels
# pip compiles the bytecode at install: the gateway runs on a read-only root filesystem and writes only to /tmp
# (prometheus-client's per-process metric files).
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -r /wheels \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gateway
# Numeric, so a runtime can check it is not root (Kubernetes' runAsNonRoot: deploy/kubernetes/).
USER 10001:10001
# 8080: websocket listener (point Sinch's connectStream at it, behind TLS); 8081: Sinch callbacks;
# 9100: /metrics, /healthz, /readyz.
EXPOSE 8080 8081 9100
# /healthz on metrics_listen's default port: the control process answers (the supervisor replaces dead workers).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=2)"]
# SIGTERM drains: calls go on for up to drain_timeout (30 s); give the runtime a longer stop timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway", "serve"]
