#!/usr/bin/env bash
# Builds .venv-glance (Glance from PyPI plus gunicorn) for the end-to-end
# tests that use a real image service; does nothing when it is already built
# from the current tests/glance/requirements.txt and Python version.
#
#   tests/glance/setup_venv.sh [VENV_DIR]     (default: <repo>/.venv-glance)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# One build at a time (pytest-xdist workers may all ask for the venv at once):
# a lock on this script itself, so that no lock file is left behind.
exec 9<tests/glance/setup_venv.sh
flock 9
venv=${1:-.venv-glance}
reqs=tests/glance/requirements.txt
stamp=$venv/.requirements.sha256
want="$(sha256sum "$reqs" | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"

if [ -x "$venv/bin/glance-manage" ] && [ -x "$venv/bin/gunicorn" ] &&
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
