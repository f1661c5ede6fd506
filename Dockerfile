# The AI node as a PACS sees it: Debian 12's Orthanc 1.10 with our Python plugin
# and DICOMweb, plus the `ctnode worker` that analyses the studies the plugin queues.
# Same Debian packages and paths as the integration tests
# (tests/orthanc_plugin/test_integration.py), so what passes there runs here.
#
#   docker build -t ctnode .
#   docker compose up          # node (Orthanc + worker) and a PACS to try it out
#
# One image, several processes: Orthanc (default command), and `ctnode worker`.
# With the SQLite queue the worker shares /var/lib/ctnode with Orthanc; scaled
# out (CTNODE_JOBS__BACKEND=celery, docs/scale-out.md) `ctnode worker --forward`
# shares it and any number of `ctnode worker` containers, on any machine, only
# need Redis and Orthanc's REST API. Celery and the Redis client come with
# requirements.lock; Redis itself runs in its own container (docker-compose.yml).
FROM debian:bookworm-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      orthanc orthanc-python orthanc-dicomweb dcmtk fonts-dejavu-core \
      python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ctnode
COPY requirements.lock pyproject.toml README.md ./
RUN python3 -m venv .venv \
 && .venv/bin/pip install --no-cache-dir torch==2.13.0 --index-url "$TORCH_INDEX_URL" \
 && .venv/bin/pip install --no-cache-dir -r requirements.lock
COPY . .
RUN .venv/bin/pip install --no-cache-dir --no-deps -e . \
 && useradd --system --home-dir /var/lib/ctnode ctnode \
 && mkdir -p /var/lib/ctnode /var/lib/orthanc/db \
 && chown -R ctnode /var/lib/ctnode /var/lib/orthanc

# orthanc.json reads these (and CTNODE_ORTHANC__PASSWORD, which has no default:
# the plugin refuses to start with an empty password). The worker reads the same
# CTNODE_* variables through ctnode/settings.py, so plugin and worker agree.
ENV PATH=/opt/ctnode/.venv/bin:$PATH \
    CTNODE_REPO_ROOT=/opt/ctnode \
    CTNODE_ORTHANC_STORAGE=/var/lib/orthanc/db \
    CTNODE_NODE__WORK_DIR=/var/lib/ctnode \
    CTNODE_WEIGHTS__DIRECTORY=/var/lib/ctnode/weights \
    CTNODE_ORTHANC__QUEUE_PATH=/var/lib/ctnode/jobs.sqlite3

USER ctnode
EXPOSE 4242 8042
VOLUME ["/var/lib/orthanc/db", "/var/lib/ctnode"]
CMD ["Orthanc", "/opt/ctnode/orthanc.json"]
