#!/usr/bin/env bash
# Installs what the real-client compatibility suite (tests/clients) needs, caching the heavy parts
# under ~/.cache/fjord so a second run is a no-op:
#   ~/.cache/fjord/venv         Python venv: pytest, pytest-timeout, kafka-python, confluent-kafka
#   ~/.cache/fjord/node         node_modules with kafkajs
#   kcat                        Debian's package (librdkafka 2.0.2 on Debian 12), via apt-get
#   iptables                    Debian's package, for the fault harness's network partitions
# Needs: python3 (3.11+) with venv/pip, node + npm, apt-get (as root or with sudo).
# Versions are pinned here; bump them deliberately (the stamp files make a bump reinstall).
set -euo pipefail

CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"
VENV="$CACHE/venv"
NODE_DIR="$CACHE/node"

PY_REQS="pytest==9.2.0
pytest-timeout==2.4.0
kafka-python==3.0.12
crc32c==2.9.post0
confluent-kafka==2.16.1"
NODE_REQS="kafkajs@2.2.4"

say() { printf 'install.sh: %s\n' "$*"; }
start=$(date +%s)

# apt-get install, running apt-get update only when the install fails without it.
apt_install() {
    local sudo=""
    if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y -qq "$@" >/dev/null 2>&1; then
        say "apt-get update"
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq "$@"
    fi
}
mkdir -p "$CACHE"

# --- Python venv -------------------------------------------------------------------------------
py_stamp="$VENV/.fjord-requirements"
if [[ -x "$VENV/bin/python" && -f "$py_stamp" && "$(cat "$py_stamp")" == "$PY_REQS" ]] \
    && "$VENV/bin/python" -c 'import pytest, pytest_timeout, kafka, confluent_kafka' 2>/dev/null; then
    say "python venv up to date ($VENV)"
else
    PYTHON="${PYTHON:-python3}"
    if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
        say "error: $PYTHON is missing or older than 3.11" >&2
        exit 1
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating venv $VENV"
        if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
            # Debian's python3 without python3-venv: install it, then retry.
            say "python3 -m venv failed; installing python3-venv with apt-get"
            rm -rf "$VENV"
            apt_install python3-venv 2>/dev/null || true
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    say "installing python packages: $(echo "$PY_REQS" | tr '\n' ' ')"
    reqfile="$(mktemp)"
    echo "$PY_REQS" >"$reqfile"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --only-binary confluent-kafka -r "$reqfile"
    rm -f "$reqfile"
    echo "$PY_REQS" >"$py_stamp"
    say "python venv ready"
fi

# --- node modules ------------------------------------------------------------------------------
node_stamp="$NODE_DIR/.fjord-requirements"
if [[ -f "$node_stamp" && "$(cat "$node_stamp")" == "$NODE_REQS" && -f "$NODE_DIR/node_modules/kafkajs/package.json" ]]; then
    say "node modules up to date ($NODE_DIR)"
else
    if ! command -v npm >/dev/null; then
        say "error: npm not found (install node and npm)" >&2
        exit 1
    fi
    mkdir -p "$NODE_DIR"
    [[ -f "$NODE_DIR/package.json" ]] || echo '{"name":"fjord-client-tests","private":true}' >"$NODE_DIR/package.json"
    say "installing node packages: $NODE_REQS"
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error --save-exact $NODE_REQS)
    echo "$NODE_REQS" >"$node_stamp"
    say "node modules ready"
fi

# --- kcat --------------------------------------------------------------------------------------
if command -v kcat >/dev/null; then
    say "kcat present ($(command -v kcat))"
else
    say "installing kcat with apt-get"
    apt_install kcat
    say "kcat ready: $(kcat -V 2>&1 | head -1)"
fi

# --- iptables (the fault harness cuts links between network namespaces with it) -------------------
if command -v iptables >/dev/null; then
    say "iptables present ($(command -v iptables))"
else
    say "installing iptables with apt-get"
    apt_install iptables
fi

say "done in $(( $(date +%s) - start ))s"
