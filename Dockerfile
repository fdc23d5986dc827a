# ringtap image. Unbuilt: the development machines have no Docker engine.
# Build:  docker build -t ringtap .
#
# The image runs as the non-root user ringtap (uid 990). The binary carries
# file capabilities CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (Docker gives a
# non-root user none of its own), so every run needs the three --cap-add:
# without them the kernel refuses to execute it ("operation not
# permitted"). Do not add --security-opt no-new-privileges: it stops file
# capabilities. Nothing is pinned in /sys/fs/bpf; no mount is needed.
#
# The agent (default command), capturing the host's interfaces:
#   install -d -o 990 -g 990 /srv/ringtap
#   docker run -d --name ringtap --restart on-failure \
#     --network host --cap-drop ALL \
#     --cap-add BPF --cap-add NET_ADMIN --cap-add PERFMON \
#     -v /etc/ringtap:/etc/ringtap:ro -v /srv/ringtap:/var/lib/ringtap \
#     --stop-timeout 60 ringtap
#   docker kill -s HUP ringtap     # re-read agent.yaml
# One capture:
#   docker run --rm --network host --cap-drop ALL \
#     --cap-add BPF --cap-add NET_ADMIN --cap-add PERFMON \
#     -v "$PWD:/out" ringtap capture -i eth0 -w /out/eth0.pcapng -c 100
# (/out must be writable by uid 990.) Without --network host the image
# captures the container's own interfaces.
FROM golang:1.26-bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang llvm libbpf-dev libpcap-dev make git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# gen/ is committed, so the build needs no clang; deps only checks packages.
RUN make build SKIP_DEPS=1

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpcap0.8 ca-certificates libcap2-bin \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 990 --user-group --home-dir /var/lib/ringtap \
         --shell /usr/sbin/nologin ringtap \
    && install -d -o ringtap -g ringtap -m 0750 /var/lib/ringtap \
    && install -d -m 0755 /etc/ringtap
COPY --from=build /src/bin/ringtap /usr/local/bin/ringtap
# Set here, not in the build stage: COPY does not carry xattrs reliably.
RUN setcap cap_bpf,cap_net_admin,cap_perfmon+ep /usr/local/bin/ringtap
USER ringtap:ringtap
WORKDIR /var/lib/ringtap
# SIGTERM stops the agent gracefully (stop_timeout, 30s by default);
# give it --stop-timeout 60 as above.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ringtap"]
CMD ["agent", "--config", "/etc/ringtap/agent.yaml"]
