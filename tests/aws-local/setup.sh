#!/usr/bin/env bash
# Creates (idempotently) the venv with moto's server, a real local SQS for the status-event
# tests (tests/it/status_events.rs); cfn-lint for deploy/cloudformation, python-hcl2 to parse
# deploy/terraform and kubernetes-validate for deploy/kubernetes (tests/it/deploy.rs). Prints
# the venv's path on its last line.
#
# Env: DURABLE_AWS_LOCAL_VENV  the venv (default: <repo>/target/aws-local-venv)
# Needs PyPI (or pip's configured index) the first time only. Exit 1 with the reason on failure.
set -euo pipefail

PINS=("moto[server]==5.2.5" "cfn-lint==1.51.0" "python-hcl2==8.1.4" "kubernetes-validate==1.37.0")
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${DURABLE_AWS_LOCAL_VENV:-$ROOT/target/aws-local-venv}"

fail() { echo "tests/aws-local/setup.sh: $*" >&2; exit 1; }
ready() {
  [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/cfn-lint" ] &&
    [ "$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('moto'), m.version('cfn-lint'), m.version('python-hcl2'), m.version('kubernetes-validate'))" 2>/dev/null)" = "5.2.5 1.51.0 8.1.4 1.37.0" ]
}

if ready; then echo "${PINS[*]} already in $VENV"; echo "$VENV"; exit 0; fi
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
if command -v flock >/dev/null; then flock 9; fi
if ready; then echo "${PINS[*]} already in $VENV"; echo "$VENV"; exit 0; fi

PYTHON=""
for p in python3.11 python3.12 python3.13 python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then PYTHON="$p"; break; fi
done
[ -n "$PYTHON" ] || fail "no Python >= 3.9 with venv found (apt-get install python3 python3-venv)"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || fail "$PYTHON -m venv $VENV failed"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}" || fail "pip install ${PINS[*]} failed"
ready || fail "${PINS[*]} are not all in $VENV after the install"
echo "${PINS[*]} installed in $VENV"
echo "$VENV"
