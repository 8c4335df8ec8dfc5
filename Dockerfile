# syntax=docker/dockerfile:1
# Build stage: dependencies first, in their own cached layer.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY config ./config
COPY examples ./examples
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

# Runtime: slim, CA certificates for HTTPS, non-root.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/crm-ingest crm-ingest \
    && mkdir -p /var/lib/crm-ingest /etc/crm-ingest \
    && chown crm-ingest /var/lib/crm-ingest
COPY --from=build /src/target/release/crm-ingest /usr/local/bin/crm-ingest
COPY config/example.toml /etc/crm-ingest/config.toml
USER crm-ingest
VOLUME /var/lib/crm-ingest
ENTRYPOINT ["crm-ingest"]
CMD ["run", "--config", "/etc/crm-ingest/config.toml"]
