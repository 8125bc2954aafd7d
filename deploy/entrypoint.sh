#!/bin/sh
# Container entrypoint: pick the config file, then run the command (default: digest serve).
# $DIGEST_CONFIG defaults to /data/config.toml (set in the Dockerfile); while that file does not
# exist, the bundled default /etc/paper-digest/config.toml is used. Set DIGEST_CONFIG to some
# other path to use that file, and only that file.
set -eu

if [ "${DIGEST_CONFIG:-/data/config.toml}" = /data/config.toml ] && [ ! -e /data/config.toml ]; then
    DIGEST_CONFIG=/etc/paper-digest/config.toml
fi
export DIGEST_CONFIG

# exec: the command becomes PID 1 and receives SIGTERM from `docker stop` directly.
exec "$@"
