#!/usr/bin/env bash
# Creates (idempotently) the Python venv of the end-to-end test (tests/e2e_emulator.rs):
# aws-durable-execution-sdk-python-testing, pinned, which brings AWS's local durable-execution
# emulator (`dex-local-runner`) and the Python durable SDK the test's functions run on; and
# botocore, pinned, whose SigV4 signer checks the exporter's signatures (tests/e2e/sigv4_receiver.py,
# driven by tests/it/otlp_sigv4.rs).
#
#   bash tests/e2e/setup.sh          # prints the venv's path on its last line
#
# Env: DURABLE_E2E_VENV    the venv (default: <repo>/target/e2e-venv)
#      DURABLE_E2E_PYTHON  the interpreter to create it with (default: the first of python3.11,
#                          python3.12, python3.13, python3 that is Python >= 3.11)
# Needs PyPI (or pip's configured index) the first time only. Exit 1 with the reason on failure.
set -euo pipefail

PACKAGE="aws-durable-execution-sdk-python-testing"
VERSION="1.4.0"
BOTOCORE_VERSION="1.44.8"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${DURABLE_E2E_VENV:-$ROOT/target/e2e-venv}"

fail() { echo "tests/e2e/setup.sh: $*" >&2; exit 1; }

version_of() {
  "$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null
}
# Ready when the venv's python runs, has the pinned versions and the emulator's entry point.
ready() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/dex-local-runner" ] &&
    [ "$(version_of "$PACKAGE")" = "$VERSION" ] &&
    [ "$(version_of botocore)" = "$BOTOCORE_VERSION" ]
}

if ready; then
  echo "$PACKAGE==$VERSION and botocore==$BOTOCORE_VERSION already in $VENV"
  echo "$VENV"
  exit 0
fi

# One setup at a time (two test processes may call this together).
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
if command -v flock >/dev/null; then flock 9; fi
if ready; then
  echo "$PACKAGE==$VERSION and botocore==$BOTOCORE_VERSION already in $VENV"
  echo "$VENV"
  exit 0
fi

good_python() {  # a Python >= 3.11 (the package needs it)
  "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}
PYTHON="${DURABLE_E2E_PYTHON:-}"
if [ -n "$PYTHON" ]; then
  good_python "$PYTHON" || fail "DURABLE_E2E_PYTHON=$PYTHON is not a Python >= 3.11 with venv"
else
  for p in python3.11 python3.12 python3.13 python3; do
    if command -v "$p" >/dev/null && good_python "$p"; then PYTHON="$p"; break; fi
  done
  [ -n "$PYTHON" ] || fail "no Python >= 3.11 found (tried python3.11, python3.12, python3.13, python3); install one (e.g. apt-get install python3.11 python3.11-venv) or set DURABLE_E2E_PYTHON"
fi

started=$(date +%s)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "creating venv $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || fail "$PYTHON -m venv $VENV failed"
fi
echo "installing $PACKAGE==$VERSION and botocore==$BOTOCORE_VERSION into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "$PACKAGE==$VERSION" "botocore==$BOTOCORE_VERSION" ||
  fail "pip install $PACKAGE==$VERSION botocore==$BOTOCORE_VERSION failed (is PyPI reachable?)"
ready || fail "$VENV does not have $PACKAGE==$VERSION, botocore==$BOTOCORE_VERSION and dex-local-runner after installing"
echo "installed in $(($(date +%s) - started))s"
echo "$VENV"
