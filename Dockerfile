# Patron's image (docs/deploy.md): docker build -t patron .
# A build stage makes the wheel, with the front-end packages fetched by npm ci (pinned with integrity
# hashes in src/patron/static/vendor/package-lock.json) inside it; the runtime stage holds Python, the
# installed package and nothing else, and runs as a user of its own.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY src/patron/static/vendor/package.json src/patron/static/vendor/package-lock.json src/patron/static/vendor/
RUN npm ci --prefix src/patron/static/vendor --no-audit --no-fund
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/patron \
 && /opt/patron/bin/pip install --no-cache-dir /wheels/patron-*.whl \
 && /opt/patron/bin/patron --version

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 patron \
 && useradd --system --uid 10001 --gid patron --home-dir /var/lib/patron --shell /usr/sbin/nologin patron \
 && install -d -o patron -g patron -m 0700 /var/lib/patron
COPY --from=build /opt/patron /opt/patron
ENV PATH=/opt/patron/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATRON_DATA_DIR=/var/lib/patron
USER patron:patron
WORKDIR /var/lib/patron
# The SQLite database, the generated certificates and the CA's key (mode 0700, the patron user's alone).
VOLUME ["/var/lib/patron"]
EXPOSE 8443
# GET /health over whichever the server speaks: HTTPS (the default) or plain HTTP (--behind-proxy on
# port 8080, as compose.yaml runs it, which gives its own check). Liveness only: no certificate check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import ssl, sys, urllib.request; urllib.request.urlopen('https://127.0.0.1:8443/health', timeout=4, context=ssl._create_unverified_context()); sys.exit(0)"]
ENTRYPOINT ["patron"]
# HTTPS with the generated certificate for localhost (docker run -p 8443:8443, then https://localhost:8443);
# behind a proxy: serve --behind-proxy --host 0.0.0.0 --port 8080.
CMD ["serve", "--host", "0.0.0.0", "--port", "8443"]
