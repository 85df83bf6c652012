# The gateway's container image (docs/operations.md, "Container image"):
#   docker build -t periskop-pushgateway .
#   podman build --format docker -t periskop-pushgateway .   (podman's OCI format drops HEALTHCHECK)
# The default base is the one the tests build on: Debian bookworm, its python3 (3.11) from
# Debian's packages. Another base needs apt-get and `useradd`.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BASE_IMAGE} AS python
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# The builder makes a virtual environment holding the gateway, the PostgreSQL driver included
# (one image serves both databases), at the versions of the lock the tests run on; the final
# stage takes only that environment. The gateway never installs anything at run time: pip and
# setuptools are left behind too.
FROM python AS builder
WORKDIR /src
COPY setup.py setup.cfg README.md ./
COPY requirements/lock.txt requirements/lock.txt
COPY periskop_pushgateway periskop_pushgateway
COPY migrations migrations
RUN python3 -m venv /opt/periskop-pushgateway \
    && /opt/periskop-pushgateway/bin/pip install --no-cache-dir -c requirements/lock.txt '.[postgresql]' \
    && /opt/periskop-pushgateway/bin/pip uninstall --yes --quiet pip setuptools

FROM python
# A numeric user, so that Kubernetes' runAsNonRoot can tell it is not root.
RUN groupadd --system --gid 10001 periskop \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin periskop \
    && mkdir /data && chown 10001:10001 /data
COPY --from=builder /opt/periskop-pushgateway /opt/periskop-pushgateway
ENV PATH=/opt/periskop-pushgateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PERISKOP_PUSHGATEWAY_DATABASE_URL=sqlite:////data/gateway.db
USER 10001:10001
WORKDIR /data
# The SQLite database and its write lock; a new volume takes this directory's owner.
VOLUME /data
EXPOSE 7878
# Liveness only: /-/healthy asks nothing of the database (readiness is /-/ready).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7878/-/healthy', timeout=4)"]
# Exec form, and `serve` execs gunicorn: gunicorn's master is PID 1 and gets SIGTERM itself,
# lets every worker finish its request (at most 30 s) and exits. Give a stop more than that.
STOPSIGNAL SIGTERM
CMD ["periskop-pushgateway", "serve"]
