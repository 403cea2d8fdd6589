# syntax=docker/dockerfile:1
#
# siyu in a container: a Rust build stage, then a small Debian runtime with
# the one binary, CA certificates and the CJK font the invite posters are
# drawn with. `docker build -t siyu .` at the repository root;
# deploy/compose.yaml runs a cluster of it (README, "Running a cluster").

# The toolchain siyu is built and tested with (CI's rustc). The workspace's
# rust-version says 1.88, but Cargo.lock's rusqlite 0.43 needs 1.89.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
# The registry and target caches survive between builds (BuildKit); the
# binary is copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p siyu \
 && cp target/release/siyu /usr/local/bin/siyu

# The same Debian release as the build stage, so the binary finds the glibc
# it was linked against.
FROM debian:bookworm-slim
# ca-certificates: for the operating system's tools (siyu's HTTPS and SMTP
# clients carry their own roots). fonts-wqy-microhei: the first CJK font
# siyu-poster looks for; without one, posters cannot be drawn.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates fonts-wqy-microhei \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin siyu \
 && mkdir /data && chown siyu:siyu /data
COPY --from=build /usr/local/bin/siyu /usr/local/bin/siyu
USER 10001:10001
# Listen on every interface of the container; the data dir holds the
# embedded SQLite store, or with --database-url only the engine snapshot.
ENV SIYU_LISTEN=0.0.0.0:8080 \
    SIYU_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
# GET /healthz answers 200 once the engine is loaded. The image has no curl:
# bash's /dev/tcp sends the request. A node on PostgreSQL replays the log at
# start (about 22 s for 11.5M events), hence the long start period.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SIYU_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 4 _ status _ <&3 && [ \"$status\" = 200 ]"]
# `siyu serve` by default; `docker run IMAGE keys create …`, `export …`
# and the other subcommands work too.
ENTRYPOINT ["siyu"]
CMD ["serve"]
