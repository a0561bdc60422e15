# usher's container images, from a clean checkout:
#
#   docker build -t usher:0.1.0 .                      # the sidecar and `usher ca serve`
#   docker build --target init -t usher-init:0.1.0 .   # `usher init-net` (nft, iptables)
#
# (podman and buildah take the same arguments.) The binary is one static
# executable (glibc linked statically, static-pie), so the default image is
# distroless "static": no shell, no package manager, no libc; it runs as the
# numeric user 2020, the UID `usher init-net` exempts from capture by default.

ARG RUST_VERSION=1.95

# ---- build ---------------------------------------------------------------------------------
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
# --target makes RUSTFLAGS apply to usher only, not to build scripts and
# proc-macros (which cannot be linked statically). The debug line tables
# are stripped (81 MB -> 23 MB); function names stay for backtraces.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(rustc -vV | sed -n 's/^host: //p')" \
    && RUSTFLAGS="-C target-feature=+crt-static" \
       cargo build --release --locked -p usher-cli --bin usher --target "$target" \
    && strip --strip-debug -o /usr/local/bin/usher "target/$target/release/usher" \
    && /usr/local/bin/usher --version \
    && linkage="$(ldd /usr/local/bin/usher 2>&1 || true)" \
    && case "$linkage" in \
         *"statically linked"*|*"not a dynamic executable"*) ;; \
         *) echo "usher is not static: $linkage" >&2; exit 1 ;; \
       esac

# ---- init: `usher init-net` drives nft / iptables-restore, so it needs them ----------------
FROM docker.io/library/debian:bookworm-slim AS init
# Debian's stable versions of the two tools; pinning exact versions would
# only break the build at the next point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nftables iptables \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/usher /usr/local/bin/usher
# Programming netfilter needs root in the pod's network namespace (with
# NET_ADMIN and NET_RAW only); the pod spec says so, this image runs as root.
ENTRYPOINT ["/usr/local/bin/usher"]
CMD ["init-net", "--help"]

# ---- the default image: the sidecar, `usher ca serve`, every other subcommand ---------------
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
COPY --from=build /usr/local/bin/usher /usr/local/bin/usher
USER 2020:2020
# inbound (mTLS), outbound, admin (probes, /metrics), the CA server
EXPOSE 15006 15001 15000 8443
ENTRYPOINT ["/usr/local/bin/usher"]
CMD ["--help"]
