#!/usr/bin/env bash
# Builds .venv-keystone (Keystone from PyPI plus gunicorn) for the Keystone
# end-to-end tests; does nothing when it is already built from the current
# tests/keystone/requirements.txt and Python version.
#
#   tests/keystone/setup_venv.sh [VENV_DIR]     (default: <repo>/.venv-keystone)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
venv=${1:-.venv-keystone}
reqs=tests/keystone/requirements.txt
stamp=$venv/.requirements.sha256
want="$(sha256sum "$reqs" | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"

if [ -x "$venv/bin/keystone-manage" ] && [ -x "$venv/bin/gunicorn" ] &&
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup_venv.sh: $venv is up to date" >&2
    exit 0
fi
echo "setup_venv.sh: building $venv from $reqs" >&2
rm -rf "$venv"
python3 -m venv "$venv"
echo '*' >"$venv/.gitignore" # keep it out of git without touching the repository's .gitignore
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs"
echo "$want" >"$stamp"
