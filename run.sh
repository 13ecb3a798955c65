#!/usr/bin/env bash
# Sets up .venv on first use (Python 3.11+, from PyPI only), then:
#   ./run.sh up [--detach]   start the platform with its demo events
#   ./run.sh test [ARGS]     run the test suite (pytest)
#   ./run.sh ANYTHING        any other `boxoffice` command (down, status, stop, start, demo, bench ...)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  # One install serves both `up` and `test` (the tests' tools come with it).
  echo "Installing boxoffice and its dependencies from PyPI into $venv (once; a minute or two)..." >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$here[test]"
  touch "$stamp"
fi

# The CLI's hints name commands as the user typed this script ("./run.sh down"), not as `boxoffice`, which
# is only on the PATH once .venv is activated.
case "$0" in
  */*) export BOXOFFICE_INVOKED_AS="$0" ;;
  *) export BOXOFFICE_INVOKED_AS="./$0" ;;
esac
cd "$here"
case "${1:-}" in
  test) shift; exec "$venv/bin/python" -m pytest "$@" ;;
  *) exec "$venv/bin/boxoffice" "$@" ;;
esac
