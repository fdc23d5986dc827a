# ringtap image. Unbuilt: the development machines have no Docker engine.
# Build:  docker build -t ringtap .
# Run:    docker run --rm --network host --cap-add BPF --cap-add NET_ADMIN \
#           --cap-add PERFMON -v /sys/fs/bpf:/sys/fs/bpf -v "$PWD:/out" \
#           ringtap capture -i eth0 -w /out/eth0.pcapng
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
      libpcap0.8 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/bin/ringtap /usr/local/bin/ringtap
ENTRYPOINT ["/usr/local/bin/ringtap"]
