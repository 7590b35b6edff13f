#!/usr/bin/env bash
# Runs the real-client compatibility suite (kafka-python, confluent-kafka, kcat, kafkajs, raw
# sockets) against a fjord binary: $FJORD_BIN, default <repo>/target/debug/fjord (build it first;
# this script does not run cargo). Installs the clients first (tests/clients/install.sh, cached
# under ~/.cache/fjord). Extra arguments go to pytest, e.g. `run.sh -k kcat -x`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${FJORD_CACHE:-$HOME/.cache/fjord}"

"$here/install.sh"

export FJORD_BIN="${FJORD_BIN:-$repo/target/debug/fjord}"
export NODE_PATH="$cache/node/node_modules"
export KAFKAJS_NO_PARTITIONER_WARNING=1
export PYTHONDONTWRITEBYTECODE=1

cd "$repo"
# -p no:cacheprovider: no .pytest_cache in the work tree. Per-test timeout 120 s (pytest.ini; a
# few tests raise their own); the whole run has a hard cap of 25 minutes.
# With no test path among the arguments, run the whole directory.
paths=("$here")
for arg in "$@"; do
    if [[ -e "${arg%%::*}" ]]; then paths=(); break; fi
done
exec timeout --kill-after=30 1500 "$cache/venv/bin/python" -m pytest \
    -c "$here/pytest.ini" --rootdir "$here" -p no:cacheprovider \
    "${paths[@]}" "$@"
