#!/usr/bin/env bash
# Creates (idempotently) the venv with moto's server, a real local SQS for the status-event
# tests (tests/it/status_events.rs). Prints the venv's path on its last line.
#
# Env: DURABLE_AWS_LOCAL_VENV  the venv (default: <repo>/target/aws-local-venv)
# Needs PyPI (or pip's configured index) the first time only. Exit 1 with the reason on failure.
set -euo pipefail

PIN="moto[server]==5.2.5"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${DURABLE_AWS_LOCAL_VENV:-$ROOT/target/aws-local-venv}"

fail() { echo "tests/aws-local/setup.sh: $*" >&2; exit 1; }
ready() {
  [ -x "$VENV/bin/moto_server" ] &&
    [ "$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('moto'))" 2>/dev/null)" = "5.2.5" ]
}

if ready; then echo "moto 5.2.5 already in $VENV"; echo "$VENV"; exit 0; fi
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
if command -v flock >/dev/null; then flock 9; fi
if ready; then echo "moto 5.2.5 already in $VENV"; echo "$VENV"; exit 0; fi

PYTHON=""
for p in python3.11 python3.12 python3.13 python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then PYTHON="$p"; break; fi
done
[ -n "$PYTHON" ] || fail "no Python >= 3.9 with venv found (apt-get install python3 python3-venv)"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" || fail "$PYTHON -m venv $VENV failed"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$PIN" || fail "pip install $PIN failed"
ready || fail "moto_server is not in $VENV after the install"
echo "moto 5.2.5 installed in $VENV"
echo "$VENV"
