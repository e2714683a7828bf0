# syntax=docker/dockerfile:1
#
# The pymultus image: every executable (multus-daemon, the thin `multus` plugin, the one-file
# multus-shim and the `pymultus` admin CLI) in one virtual environment, /opt/pymultus.
#
#   docker build -t pymultus:0.1.0 .
#
# It runs as an unprivileged user by default. The DaemonSets in deploy/ run as root only where
# the work needs it: the init container that copies the shim into the host's /opt/cni/bin
# (root-owned) and the daemon (it enters network namespaces and runs delegate plugins).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels for pymultus and every dependency ------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels .

# --- runtime: the wheels installed into a venv, nothing else --------------------------------
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Install from the build stage's wheels only (no index), then drop the installers: nothing in
# the image can fetch or build code at run time. Byte-compiled now, because the containers run
# with a read-only root filesystem and start a Python process for every probe.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/pymultus \
    && /opt/pymultus/bin/pip install --no-index --find-links=/wheels pymultus \
    && /opt/pymultus/bin/pip uninstall -y -q pip setuptools \
    && /opt/pymultus/bin/python -m compileall -q /opt/pymultus/lib \
    && /opt/pymultus/bin/pymultus version \
    && useradd --system --uid 65532 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin pymultus
ENV PATH=/opt/pymultus/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="pymultus" \
      org.opencontainers.image.description="Multus, the Kubernetes multi-network CNI meta-plugin, in Python" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
USER 65532:65532
CMD ["pymultus", "--help"]
