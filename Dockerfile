# kraken_exporter: multi-stage build, static-ish binary on a distroless non-root base.
#   docker build --build-arg BUILD_GIT_REVISION=$(git rev-parse --short=12 HEAD) -t kraken_exporter .
#   docker run --rm -p 9877:9877 kraken_exporter --demo
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
ARG BUILD_GIT_REVISION=unknown
ENV BUILD_GIT_REVISION=${BUILD_GIT_REVISION}
# Dependencies first, so source edits do not rebuild them. The manifest names benches/ targets, so
# cargo needs those files to exist even though the image builds only the binary.
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches ./benches
# /state: an empty directory, copied below as the ledger's state_dir.
RUN mkdir src /state && echo "fn main() {}" > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin kraken_exporter

FROM gcr.io/distroless/cc-debian12:nonroot
ARG BUILD_GIT_REVISION=unknown
LABEL org.opencontainers.image.title="kraken_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Kraken account balances: balance, hold, credit and available per asset and earn family" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${BUILD_GIT_REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/release/kraken_exporter /usr/local/bin/kraken_exporter
# state_dir = "/var/lib/kraken_exporter" (the ledger's counters across restarts): owned by the image's
# user, so a volume mounted there (a new named volume takes the directory's owner) is writable with a
# read-only root filesystem.
COPY --from=build --chown=65532:65532 /state /var/lib/kraken_exporter
USER 65532:65532
EXPOSE 9877
# Secrets come from files (api_secret_file, KRAKEN_API_SECRET_FILE) or KRAKEN_API_KEY/KRAKEN_API_SECRET.
# Without arguments the account comes from those variables; pass --config FILE for a mounted config.
ENTRYPOINT ["/usr/local/bin/kraken_exporter"]
CMD ["--web.listen-address=0.0.0.0:9877"]
