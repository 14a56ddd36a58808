# syntax=docker/dockerfile:1
# The wallet as a container: a static binary built with the Go toolchain,
# in a distroless image (CA certificates and time zones, no shell), run as
# an unprivileged user. docs/DEPLOYMENT.md describes how to run it.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a change to the code reuses the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
    -o /out/apiwallet ./cmd/apiwallet && \
    mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot AS final
COPY --from=build /out/apiwallet /apiwallet
# The data directory belongs to the user the wallet runs as, so that the
# volume mounted there is writable (the embedded SQLite lives in it).
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV HOST=0.0.0.0 PORT=6789 APIWALLET_DATA_DIR=/data
VOLUME /data
EXPOSE 6789
# No curl in a static image: the binary asks its own /monitoring/health.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/apiwallet", "healthcheck", "--timeout", "3s"]
ENTRYPOINT ["/apiwallet"]
CMD ["serve"]
