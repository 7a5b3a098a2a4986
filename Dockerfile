# Caddy with caddy-comet, in the usual shape of a Caddy plugin image: a
# builder stage runs xcaddy, then Caddy's own image takes the binary. The
# builder runs scripts/xcaddy-build.sh, the build that .ci/run checks.
#
#   docker build -t caddy-comet .
#   docker run --rm -p 127.0.0.1:4080:4080 \
#       -v "$PWD/Caddyfile:/etc/caddy/Caddyfile:ro" caddy-comet
#
# Not run with Docker: the machines this project is built on cannot pull
# images (see docs/deployment.md, "Container", for what was run instead).

FROM golang:1.26-alpine AS builder
RUN go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5
WORKDIR /src
COPY . .
RUN scripts/xcaddy-build.sh /usr/bin/caddy

FROM caddy:2.11
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
# New goroutines start at Go's smallest stack rather than the average of the
# last collection: 12% to 14% less memory for a hub holding thousands of reads
# (docs/deployment.md, "Memory, and the Go runtime's settings").
ENV GODEBUG=adaptivestackstart=0
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
