# The backproof daemon image: the backproof binary plus the client tools it
# drives (pg_dump and pg_restore of PostgreSQL 15, Debian bookworm's).
#
# Build it with scripts/image.sh, which compiles the binary outside (static,
# CGO_ENABLED=0), puts it next to this file in a fresh build context and
# picks the base: backproof-sandbox/base:bookworm, the Debian rootfs that
# scripts/sandbox-images.sh imports from Debian packages, so no registry is
# needed. Where one is reachable, --base debian:bookworm-slim gives a smaller
# image. apt-get below needs a Debian mirror.
#
# Run (see the README): mount the config at /etc/backproof/backproof.yaml and
# local destinations under /var/lib/backproof; verification needs the Docker
# socket and the host's network namespace (sandboxes publish on its loopback).
ARG BASE=debian:bookworm-slim
FROM ${BASE}

RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        postgresql-client-15 ca-certificates curl; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 backproof; \
    useradd --system --uid 10001 --gid backproof --home-dir /var/lib/backproof \
        --no-create-home --shell /usr/sbin/nologin backproof; \
    mkdir -p /etc/backproof /var/lib/backproof; \
    chown backproof:backproof /var/lib/backproof; \
    pg_dump --version; pg_restore --version

# After the apt layer, so a new version reuses it.
ARG VERSION=dev
LABEL org.opencontainers.image.title="backproof" \
      org.opencontainers.image.description="Scheduled database backups to several destinations, proven by restoring them" \
      org.opencontainers.image.version="${VERSION}"
COPY backproof /usr/local/bin/backproof

USER backproof:backproof
WORKDIR /var/lib/backproof
VOLUME ["/etc/backproof", "/var/lib/backproof"]
EXPOSE 9847

# /healthz answers 200 while the daemon serves. The URL follows the config's
# listen address; change it with -e BACKPROOF_HEALTHCHECK_URL=... .
ENV BACKPROOF_HEALTHCHECK_URL=http://127.0.0.1:9847/healthz
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD curl -fsS --max-time 4 -o /dev/null "$BACKPROOF_HEALTHCHECK_URL" || exit 1

ENTRYPOINT ["backproof"]
CMD ["daemon", "-c", "/etc/backproof/backproof.yaml"]
