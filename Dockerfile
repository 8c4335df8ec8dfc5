# syntax=docker/dockerfile:1
# crm-ingest: multi-stage build. The dependency layer is cached until Cargo.toml/Cargo.lock
# change; the runtime image is Debian slim with CA certificates and a non-root user.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies only: a stub crate with the real manifest (and stub bench/example targets,
# which the manifest names; they are not built here).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for b in hot_paths gen_clients raw_count; do echo 'fn main() {}' > "benches/$b.rs"; done \
    && cargo build --release --locked --bin crm-ingest \
    && rm -rf src
# The crate itself (config/ and examples/ are compiled in for `demo`).
COPY src ./src
COPY config ./config
COPY examples ./examples
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin crm-ingest

FROM debian:bookworm-slim
# The service user (uid 10001) owns the ledger's volume and the drop folders; the config is
# root's, read-only to the service, as under systemd.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 crm-ingest \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/crm-ingest crm-ingest \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/crm-ingest \
    && install -d -o 10001 -g 10001 -m 2770 /srv/crm-ingest /srv/crm-ingest/repsly-clients /srv/crm-ingest/plannr-clients \
    && install -d -m 0755 /etc/crm-ingest
COPY --from=build /src/target/release/crm-ingest /usr/local/bin/crm-ingest
# The shipped service config: state in the volume below, drop folders under /srv/crm-ingest.
# Mount your own over it; a config from `crm-ingest init` keeps its ledger in the volume too
# (its state_dir reads STATE_DIRECTORY).
COPY config/service.toml /etc/crm-ingest/config.toml
ENV STATE_DIRECTORY=/var/lib/crm-ingest
USER 10001:10001
VOLUME ["/var/lib/crm-ingest", "/srv/crm-ingest"]
# /status and /metrics listen on the container's loopback (the health check reaches them);
# set `[server] listen = "0.0.0.0:9464"` behind an authenticating proxy to publish them.
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["crm-ingest", "health", "--url", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["crm-ingest"]
CMD ["run", "--config", "/etc/crm-ingest/config.toml"]
