# Concurrency Lab (conlab) container image.
#
#   docker build -t conlab .
#   podman build --format docker -t conlab .       # podman: keep HEALTHCHECK
#   docker run --rm -p 8080:8080 conlab            # dashboard on :8080
#   docker run --rm -p 8080:8080 conlab --threads 4 --log-level warn
#   docker run --rm -p 9091:9091 conlab --port 9091  # healthy too
#
# Podman (buildah) builds OCI images by default, and the OCI image format
# has no HEALTHCHECK: without --format docker the check is dropped (with a
# warning) and the container never reports a health status.
#
# Options go after the image name or in CONLAB_* variables (see
# `docker run --rm conlab --help`). SIGTERM (docker stop) drains in-flight
# requests within --grace-ms (5 s by default, inside docker's 10 s).

# --- build: the same Makefile as on a developer's machine -----------------
FROM debian:12 AS build

# The build group of scripts/deps.sh; libc6-dev is only a Recommends of gcc,
# so name it rather than rely on it arriving through another -dev package.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends \
        gcc libc6-dev make pkg-config \
        libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN make -j"$(nproc)" all

# --- runtime: the shared libraries and the binary, nothing else ------------
FROM debian:12-slim

# curl is for the HEALTHCHECK only (libcurl4 is needed anyway).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends \
        libmicrohttpd12 libjansson4 libcurl4 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 conlab \
    && useradd --system --uid 10001 --gid conlab --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin conlab

COPY --from=build /src/build/conlab /usr/local/bin/conlab
COPY deploy/healthcheck.sh /usr/local/bin/conlab-healthcheck
COPY --from=build /src/web /usr/share/conlab/web

ENV CONLAB_BIND=0.0.0.0 \
    CONLAB_WEB_ROOT=/usr/share/conlab/web

# Numeric, so that runAsNonRoot-style checks can verify it.
USER 10001:10001
EXPOSE 8080

# GET /health on the port and address conlab really listens on, found in
# /proc/net/tcp{,6} (deploy/healthcheck.sh): --port/--bind arguments and
# CONLAB_PORT/CONLAB_BIND are all honoured.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["conlab-healthcheck"]

# Exec form: conlab is PID 1 and receives SIGTERM itself.
ENTRYPOINT ["conlab"]
