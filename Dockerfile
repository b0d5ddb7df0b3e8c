# hostnic image: hostnic plus the tools its daemon runs on the node (ip, iptables, sysctl,
# nsenter).
# The DaemonSet (deploy/hostnic.yaml) runs `hostnic install` as its init container and
# `hostnic daemon start` as its main container; the program picks the mode from its arguments.
#
# Two variants with the same layout (/usr/local/bin/hostnic is the entry point of both):
#   compiled (the default, last stage): the `deno compile` binary.
#       deno task build                                  # → dist/hostnic
#       docker build -t hostnic:0.1.0 .
#   source: the deno runtime + this repository's source + its npm packages, run with `deno run`;
#   for machines that cannot download the runtime `deno compile` embeds (the test bed, see
#   docs/testing.md). Its `hostnic install` also copies the runtime and source next to the plugin.
#       deno install --frozen && mkdir -p dist && cp "$(command -v deno)" dist/deno
#       docker build --target source -t hostnic:0.1.0 .
#
# BASE: any Debian bookworm image. When it already has iproute2, iptables, procps and util-linux
# (the test bed's base, made with `debootstrap --variant=minbase --include=iproute2,iptables,
# procps,ca-certificates`) the apt step does nothing, so the build needs no network.
# (procps: the daemon sets sysctls with `sysctl`, which bookworm-slim does not have.)
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS base
RUN if command -v ip && command -v iptables && command -v sysctl && command -v nsenter; \
    then echo "base has iproute2, iptables, procps and util-linux: apt-get skipped"; \
    else apt-get update \
      && apt-get install -y --no-install-recommends iproute2 iptables procps util-linux \
        ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi

FROM base AS source
ENV DENO_NO_UPDATE_CHECK=1
COPY dist/deno /usr/local/lib/hostnic/deno
COPY main.ts deno.json deno.lock /usr/local/lib/hostnic/src/
COPY cmd /usr/local/lib/hostnic/src/cmd
COPY lib /usr/local/lib/hostnic/src/lib
COPY node_modules /usr/local/lib/hostnic/src/node_modules
COPY deploy/image/hostnic-from-source.sh /usr/local/bin/hostnic
ENTRYPOINT ["/usr/local/bin/hostnic"]
CMD ["help"]

FROM base AS compiled
COPY dist/hostnic /usr/local/bin/hostnic
ENTRYPOINT ["/usr/local/bin/hostnic"]
CMD ["help"]
