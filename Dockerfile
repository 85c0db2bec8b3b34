# The gateway, for docker-compose.yml (or any container runtime): `docker build -t sinch-stream-gateway .`
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install --no-cache-dir .
# 8080: websocket listener (point Sinch's connectStream at it, behind TLS); 8081: Sinch callbacks;
# 9100: /metrics, /healthz, /readyz.
EXPOSE 8080 8081 9100
# SIGTERM drains: calls go on for up to drain_timeout (30 s); give the runtime a longer stop timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway", "serve"]
