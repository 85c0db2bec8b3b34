# The gateway, for docker-compose.yml (or any container runtime): `docker build -t sinch-stream-gateway .`
# A builder stage compiles the data plane (Cython, C compiler); the image itself carries no compiler.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -r /wheels
# 8080: websocket listener (point Sinch's connectStream at it, behind TLS); 8081: Sinch callbacks;
# 9100: /metrics, /healthz, /readyz.
EXPOSE 8080 8081 9100
# SIGTERM drains: calls go on for up to drain_timeout (30 s); give the runtime a longer stop timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway", "serve"]
