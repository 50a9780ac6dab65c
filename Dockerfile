# tintype in a container: one image, every role (`tintype up` by default;
# `tintype api --routes ...` or `tintype worker` for the scaled-out shape).
#
# Stage 1 builds the plain binary (no sanitizer variant, no tests) from
# Debian 12's own packages; stage 2 is the runtime: the shared libraries the
# binary links, libvips (dlopened by the worker), the headless shell as the
# browser, and a non-root user. The web front-end is embedded in the binary.
#
#   podman build --format docker -t tintype .      (or docker build -t tintype .)
#   podman run -p 8080:8080 -v tintype-data:/data tintype
#
# The check that builds and runs this file for real on a machine without a
# registry is tests/deploy/test_docker.py (docs/ARCHITECTURE.md, "Deploy").

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config python3 \
      libuv1-dev node-llhttp libjansson-dev libwebsockets-dev libcurl4-openssl-dev \
      libsqlite3-dev libvips-dev libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
# the layer table CMake checks src/ against
COPY docs/ARCHITECTURE.md docs/
COPY cmd cmd
COPY include include
COPY src src
COPY tools tools
COPY web web
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTT_ASAN_VARIANT=OFF >/dev/null \
 && cmake --build /build -j"$(nproc)" --target tintype \
 && strip /build/tintype \
 && /build/tintype --help >/dev/null

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libjansson4 libsqlite3-0 libcurl4 libwebsockets17 libwebsockets-evlib-uv libssl3 zlib1g libvips42 \
      chromium-headless-shell fonts-dejavu-core ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /data --shell /usr/sbin/nologin --user-group tintype \
 && mkdir -p /data && chown tintype:tintype /data
COPY --from=build /build/tintype /usr/bin/tintype
ENV TINTYPE_DATA=/data \
    TINTYPE_CHROMIUM=/usr/bin/chromium-headless-shell \
    TINTYPE_PORT=8080
USER tintype
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# the same check the load balancer makes: 200, or 503 while draining
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${TINTYPE_PORT:-8080}/index.html" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tintype"]
CMD ["up"]
