# hostnic image: the compiled binary plus the tools its daemon runs on the node (ip, iptables,
# nsenter). Build the binary first, then the image:
#   deno task build                      # → dist/hostnic
#   docker build -t hostnic:0.1.0 .
# The DaemonSet (deploy/hostnic.yaml) runs `hostnic install` as its init container and
# `hostnic daemon start` as its main container; the binary picks the mode from its arguments.
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 iptables ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY dist/hostnic /usr/local/bin/hostnic

ENTRYPOINT ["/usr/local/bin/hostnic"]
CMD ["help"]
