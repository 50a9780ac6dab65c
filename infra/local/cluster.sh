#!/usr/bin/env bash
# cluster.sh TINTYPE_BINARY [--port 8000] [--data DIR] — `make cluster`:
# HAProxy as the ALB in front of 2 API and 2 worker instances on loopback
# (infra/local/cluster.py). Ctrl-C drains and stops everything.
set -euo pipefail
exec python3 -u "$(dirname "$0")/cluster.py" "$@"
