# The backproof daemon image: the backproof binary plus the client tools it
# drives: pg_dump and pg_restore of PostgreSQL 18 (Debian sid's), which dump
# and restore servers 9.2 to 18, and coreutils' stdbuf, which makes pg_dump
# write its output 1 MiB at a time instead of 4 KiB.
#
# Build it with scripts/image.sh, which compiles the binary outside (static,
# CGO_ENABLED=0), puts it next to this file in a fresh build context and
# picks the base: backproof-sandbox/base:sid-pg, the Debian sid rootfs that
# scripts/sandbox-images.sh imports from Debian packages (it has the client
# tools already), so neither a registry nor a mirror is needed. Where a
# registry is reachable, --base debian:sid-slim gives a smaller image; then
# apt-get below needs a Debian mirror.
#
# Run (see the README): mount the config at /etc/backproof/backproof.yaml and
# local destinations under /var/lib/backproof; verification needs the Docker
# socket and the host's network namespace (sandboxes publish on its loopback).
ARG BASE=debian:sid-slim
FROM ${BASE}

ARG PG_MAJOR=18
RUN set -eux; \
    if ! dpkg -s "postgresql-client-$PG_MAJOR" ca-certificates curl >/dev/null 2>&1; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "postgresql-client-$PG_MAJOR" ca-certificates curl; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --system --gid 10001 backproof; \
    useradd --system --uid 10001 --gid backproof --home-dir /var/lib/backproof \
        --no-create-home --shell /usr/sbin/nologin backproof; \
    mkdir -p /etc/backproof /var/lib/backproof; \
    chown backproof:backproof /var/lib/backproof; \
    pg_dump --version | grep -F "(PostgreSQL) $PG_MAJOR."; \
    pg_restore --version | grep -F "(PostgreSQL) $PG_MAJOR."; \
    command -v stdbuf

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
