# syntax=docker/dockerfile:1
#
# durable-exporter container image.
#
#   docker build -t durable-exporter .
#   docker run --read-only -v durable-exporter-state:/var/lib/durable-exporter \
#     -p 9464:9464 -e AWS_REGION=us-east-1 durable-exporter
#
# Runtime: distroless (glibc, CA certificates, no shell), non-root uid 65532. The only writable
# path is the checkpoint volume, so the container runs with a read-only root file system.

ARG RUST_VERSION=1.95

# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS builder

WORKDIR /build

# 1. Dependencies only: the manifests with placeholder sources, so this layer is rebuilt only
#    when Cargo.toml or Cargo.lock change. rustls uses ring: no OpenSSL or aws-lc toolchain.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin durable-exporter \
    && rm -rf src \
        target/release/durable-exporter* \
        target/release/deps/durable_exporter* \
        target/release/deps/libdurable_exporter* \
        target/release/.fingerprint/durable-exporter-*

# 2. The crate itself.
COPY src ./src
RUN cargo build --release --locked --bin durable-exporter \
    && install -D -m 0755 target/release/durable-exporter /out/usr/local/bin/durable-exporter \
    && mkdir -p /out/var/lib/durable-exporter \
    && chown 65532:65532 /out/var/lib/durable-exporter \
    && chmod 0750 /out/var/lib/durable-exporter

# ---------------------------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
# Where the sources live: set it when you publish (docker build --build-arg SOURCE=...).
ARG SOURCE=https://github.com/OWNER/durable-exporter

LABEL org.opencontainers.image.title="durable-exporter" \
      org.opencontainers.image.description="Turns AWS Lambda durable execution histories into OpenTelemetry traces and Prometheus metrics" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

COPY --from=builder /out/usr/local/bin/durable-exporter /usr/local/bin/durable-exporter
COPY config/durable-exporter.yaml /etc/durable-exporter/durable-exporter.yaml
# The checkpoint directory, owned by the non-root user (no shell here to mkdir or chown it).
COPY --from=builder --chown=65532:65532 /out/var/lib/ /var/lib/

ENV DURABLE_EXPORTER__CHECKPOINT__DIR=/var/lib/durable-exporter
# Read positions: the only path the exporter writes. Mount a persistent volume here (a named
# volume, EFS on ECS, a PersistentVolumeClaim) or a restart reads every history from the start.
VOLUME ["/var/lib/durable-exporter"]

# /metrics, /healthz and /readyz (http.listen). The run-time API (api.listen) stays on the
# container's loopback unless configured with a token: it is not exposed.
EXPOSE 9464

# No shell or curl in the image: the binary asks its own /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/durable-exporter", "healthcheck", "--addr", "127.0.0.1:9464"]

# distroless "nonroot" (65532:65532), numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532

ENTRYPOINT ["/usr/local/bin/durable-exporter"]
CMD ["run", "--config", "/etc/durable-exporter/durable-exporter.yaml"]
