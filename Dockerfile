# syntax=docker/dockerfile:1
#
# Notary chain node image: one container runs one institution's node.
#
#   docker build -t notarychain-node .
#
# Layout inside the container (see deploy/README.md):
#
#   /consortium/genesis.json      read-only, from `notarychain-node init`
#   /consortium/ca.crt            read-only, from init
#   /consortium/node/node.toml    read-only, the institution's NAME/node.toml, unedited
#   /consortium/node/node.key     read-only, NAME/node.key
#   /consortium/node/tls.crt      read-only, NAME/tls.crt
#   /consortium/node/tls.key      read-only, NAME/tls.key
#   /consortium/node/data  ->  /data   (a symlink made here; /data is the data volume)
#
# Mount those files one by one (never the whole init output: it holds ca.key
# and every institution's keys). node.toml's paths are relative to it, so
# genesis = "../genesis.json" is /consortium/genesis.json and data_dir = "data"
# follows the symlink to /data. The directory is always /consortium/node,
# whatever the institution, so the command below is the same for every node.
#
# Encrypted keys: pass NOTARYCHAIN_KEY_PASSPHRASE in the environment.
# The node runs as uid/gid 10001; the key files mounted in must be readable by
# it (chown them, or build with --build-arg NOTARYCHAIN_UID=$(id -u)
# --build-arg NOTARYCHAIN_GID=$(id -g)).

FROM python:3.11-slim

ARG NOTARYCHAIN_UID=10001
ARG NOTARYCHAIN_GID=10001

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    NOTARYCHAIN_CONFIG=/consortium/node/node.toml

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ledger ./ledger
COPY consensus ./consensus
COPY node ./node
COPY client ./client
RUN pip install --no-cache-dir . \
    && rm -rf /src

RUN groupadd --system --gid "${NOTARYCHAIN_GID}" notarychain \
    && useradd --system --no-log-init --uid "${NOTARYCHAIN_UID}" --gid notarychain \
       --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin notarychain \
    && mkdir -p /consortium/node /data \
    && ln -s /data /consortium/node/data \
    && chown notarychain:notarychain /data \
    && chmod 0700 /data

# /data is the node's database; it must survive the container. /consortium is
# not declared a VOLUME on purpose: its files are bind-mounted one by one, and
# the image's /consortium/node/data symlink must stay visible.
VOLUME ["/data"]
WORKDIR /data
USER ${NOTARYCHAIN_UID}:${NOTARYCHAIN_GID}

# The node listens on its node.toml's [listen] host, which is the name the
# genesis gives it (not 127.0.0.1), so the check reads the host and API port
# from the config. No curl in slim images: Python's urllib, no proxies.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, tomllib, urllib.request; listen = tomllib.load(open(os.environ.get('NOTARYCHAIN_CONFIG', '/consortium/node/node.toml'), 'rb'))['listen']; urllib.request.build_opener(urllib.request.ProxyHandler({})).open('http://%s:%d/v1/health/live' % (listen['host'], listen['api_port']), timeout=4)"]

ENTRYPOINT ["notarychain-node"]
# NOTARYCHAIN_CONFIG (read by the HEALTHCHECK) names the same file: change both
# if you run the node from another config path.
CMD ["run", "--config", "/consortium/node/node.toml"]
