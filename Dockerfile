# syntax=docker/dockerfile:1
#
# The gslb image: a release build on Debian 12, run on distroless (glibc, CA
# certificates for HTTPS probes, no shell, no package manager) as the non-root user
# 65532. The binary carries the cap_net_bind_service file capability so that it can
# serve DNS on port 53 without root; the Kubernetes Deployment adds NET_BIND_SERVICE
# to the container and drops every other capability.
#
#   docker build -t registry.example.com/gslb:0.1.0 .
#   docker run --rm -p 53:53/udp -p 53:53/tcp \
#     -v "$PWD/gslb.toml:/etc/gslb/gslb.toml:ro" registry.example.com/gslb:0.1.0
#
# (a config with dns_listen = ["0.0.0.0:53"]; the Kubernetes one is in
# deploy/kubernetes/configmap.yaml).
#
# Build and runtime stages use the same Debian release, so the binary's glibc matches.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# setcap, to give the binary its capability in this stage (COPY --from keeps it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache the registry and the target folder between builds; the binary is copied out of
# the cache mount before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin gslb \
    && install -D -m 0755 target/release/gslb /out/usr/local/bin/gslb
# Not chowned afterwards: a chown would clear the capability.
RUN setcap cap_net_bind_service=+ep /out/usr/local/bin/gslb \
    && mkdir -p /out/state

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/gslb /usr/local/bin/gslb
# Where the state file goes (the Deployment mounts an emptyDir here).
COPY --from=build --chown=65532:65532 /out/state /var/lib/gslb
USER 65532:65532
# DNS (UDP and TCP), admin API (metrics, health, status).
EXPOSE 53/udp 53/tcp 19153/tcp
ENTRYPOINT ["/usr/local/bin/gslb"]
CMD ["serve", "--config", "/etc/gslb/gslb.toml"]
