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
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --home-dir /var/lib/crm-ingest crm-ingest \
    && mkdir -p /var/lib/crm-ingest /etc/crm-ingest \
    && chown crm-ingest:crm-ingest /var/lib/crm-ingest \
    && chmod 0700 /var/lib/crm-ingest
COPY --from=build /src/target/release/crm-ingest /usr/local/bin/crm-ingest
COPY config/example.toml /etc/crm-ingest/config.toml
USER 10001:10001
VOLUME ["/var/lib/crm-ingest"]
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["crm-ingest", "health", "--url", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["crm-ingest"]
CMD ["run", "--config", "/etc/crm-ingest/config.toml"]
