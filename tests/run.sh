#!/usr/bin/env bash
# The test command of Scoria: ./tests/run.sh
#
# Does every piece of set-up itself, so that it passes on a fresh Debian
# machine where it runs as root:
#   1. PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) installed and
#      running (used by the multi-process tests of later issues);
#   2. a 1 GiB XFS filesystem with reflink, loop-mounted, exported as
#      SCORIA_REFLINK_DIR for the file driver's reflink compliance test;
#      the iSCSI target tgtd running on 127.0.0.1:3260, with libiscsi's tools
#      and a qemu-img that speaks iscsi:// as initiators (iSCSI exports);
#   3. the Python venvs: .venv with the real OpenStack clients, .venv-keystone
#      with Keystone (tests/keystone), .venv-glance with Glance (tests/glance);
#   4. cargo fmt --check, cargo build, cargo clippy -D warnings;
#   5. cargo test (plus the ignored reflink test of scoria-drivers);
#   6. the end-to-end tests, tests/e2e, with pytest.
# Every check runs even when an earlier one failed (except that nothing runs
# after a failed build); the script exits non-zero if any failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

log() { printf '\n==> %s\n' "$*" >&2; }
die() {
    printf '\nrun.sh: FATAL: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- helpers

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); fi
fi

APT_UPDATED=0
apt_update() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install the packages by hand"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
            die "apt-get update failed"
        APT_UPDATED=1
    fi
}

# apt_install [--allow-downgrades] PKG[=VERSION]...
apt_install() {
    apt_update
    log "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" ||
        die "apt-get install $* failed"
}

# port_open PORT: is something accepting TCP connections on 127.0.0.1:PORT?
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# wait_port PORT SECONDS
wait_port() {
    local port=$1 deadline=$((SECONDS + $2))
    while ! port_open "$port"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}

# ------------------------------------------------- 1. PostgreSQL, RabbitMQ

ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /etc/postgresql ] ||
        [ -z "$(ls -A /etc/postgresql 2>/dev/null)" ]; then
        apt_install postgresql
    fi
    if ! port_open 5432; then
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        log "starting PostgreSQL $version"
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
            true # "already running" is not an error; the port check decides
        wait_port 5432 60 || die "PostgreSQL is not reachable on 127.0.0.1:5432"
    fi
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h 127.0.0.1 -p 5432 -t 30 ||
            die "PostgreSQL on 127.0.0.1:5432 does not accept connections"
    fi
    log "PostgreSQL is up on 127.0.0.1:5432"
}

ensure_rabbitmq() {
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        apt_install rabbitmq-server
    fi
    if ! port_open 5672; then
        log "starting RabbitMQ"
        "${SUDO[@]}" rabbitmq-server -detached || true
        wait_port 5672 60 || die "RabbitMQ is not reachable on 127.0.0.1:5672 after 60 s"
    fi
    log "RabbitMQ is up on 127.0.0.1:5672"
}

# ------------------------------------------------------ 2. reflink scratch fs

REFLINK_TMP=""
cleanup() {
    if [ -n "$REFLINK_TMP" ]; then
        if mountpoint -q "$REFLINK_TMP/mnt" 2>/dev/null; then
            "${SUDO[@]}" umount "$REFLINK_TMP/mnt" ||
                "${SUDO[@]}" umount -l "$REFLINK_TMP/mnt" || true
        fi
        rm -rf "$REFLINK_TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

setup_reflink_fs() {
    if ! command -v mkfs.xfs >/dev/null 2>&1; then
        apt_install xfsprogs
    fi
    REFLINK_TMP=$(mktemp -d "${TMPDIR:-/tmp}/scoria-reflink.XXXXXX")
    truncate -s 1G "$REFLINK_TMP/xfs.img"
    mkfs.xfs -q -m reflink=1 "$REFLINK_TMP/xfs.img" >/dev/null ||
        die "mkfs.xfs -m reflink=1 failed"
    mkdir "$REFLINK_TMP/mnt"
    "${SUDO[@]}" mount -o loop "$REFLINK_TMP/xfs.img" "$REFLINK_TMP/mnt" ||
        die "cannot loop-mount the XFS image (needs root and loop devices)"
    export SCORIA_REFLINK_DIR="$REFLINK_TMP/mnt"
    log "reflink-capable XFS mounted on $SCORIA_REFLINK_DIR"
}

# -------------------------------------------------- 2b. iSCSI target, initiators

# qemu_img_ok: does qemu-img handle raw, qcow2 and iscsi:// (qemu-block-extra)?
qemu_img_ok() {
    command -v qemu-img >/dev/null 2>&1 || return 1
    local formats
    formats=$(qemu-img --help | sed -n 's/^Supported formats://p')
    for f in raw qcow2 iscsi; do
        case " $formats " in *" $f "*) ;; *) return 1 ;; esac
    done
}

# qemu-img with iscsi:// needs qemu-block-extra of exactly qemu-utils' version;
# a backported qemu-utils may have none, so both go to the version the
# archive has qemu-block-extra in (a downgrade from a backport).
ensure_qemu_img() {
    qemu_img_ok && return
    apt_update
    local version
    version=$(apt-cache policy qemu-block-extra | awk '/Candidate:/ {print $2}')
    [ -n "$version" ] && [ "$version" != "(none)" ] ||
        die "no qemu-block-extra package in the apt sources (needed for qemu-img iscsi://)"
    apt_install --allow-downgrades "qemu-utils=$version" "qemu-block-extra=$version"
    qemu_img_ok || die "qemu-img $version still lacks one of raw, qcow2, iscsi"
    local tmp
    tmp=$(mktemp -d)
    qemu-img create -q -f raw "$tmp/a.raw" 1M &&
        qemu-img convert -f raw -O qcow2 "$tmp/a.raw" "$tmp/a.qcow2" &&
        qemu-img convert -f qcow2 -O raw "$tmp/a.qcow2" "$tmp/b.raw" ||
        die "qemu-img $version cannot convert between raw and qcow2"
    rm -rf "$tmp"
}

tgtd_up() {
    "${SUDO[@]}" tgtadm --lld iscsi --op show --mode sys >/dev/null 2>&1 && port_open 3260
}

ensure_iscsi() {
    local missing=()
    command -v tgtd >/dev/null 2>&1 && command -v tgtadm >/dev/null 2>&1 || missing+=(tgt)
    command -v iscsi-readcapacity16 >/dev/null 2>&1 || missing+=(libiscsi-bin)
    [ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"
    ensure_qemu_img
    if ! tgtd_up; then
        log "starting tgtd"
        "${SUDO[@]}" tgtd || true # "already running" is not an error; the checks decide
        local deadline=$((SECONDS + 30))
        until tgtd_up; do
            [ "$SECONDS" -lt "$deadline" ] ||
                die "tgtd is not answering tgtadm or not listening on 127.0.0.1:3260"
            sleep 1
        done
    fi
    log "tgtd is up on 127.0.0.1:3260"
}

# ------------------------------------------------------------------ 3. venv

setup_venv() {
    local stamp=.venv/.requirements.sha256 want
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    want="$(sha256sum tests/requirements.txt | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
    if [ -x .venv/bin/python ] && .venv/bin/python -c '' 2>/dev/null &&
        [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "venv .venv is up to date"
        return
    fi
    log "building venv .venv from tests/requirements.txt"
    rm -rf .venv
    if ! python3 -m venv .venv; then
        rm -rf .venv
        apt_install python3-venv
        python3 -m venv .venv || die "python3 -m venv failed"
    fi
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt ||
        die "pip install -r tests/requirements.txt failed"
    echo "$want" >"$stamp"
}

# Keystone from PyPI in .venv-keystone, for tests/e2e/test_keystone.py.
setup_keystone_venv() {
    tests/keystone/setup_venv.sh || die "building .venv-keystone failed"
}

# Glance from PyPI in .venv-glance, for the tests with a real image service
# (tests/e2e/glance_fixture.py).
setup_glance_venv() {
    tests/glance/setup_venv.sh || die "building .venv-glance failed"
}

# ----------------------------------------------------------------- running

FAILED=()
# step NAME CMD...: run a check, remember a failure, go on.
step() {
    local name=$1
    shift
    log "$name: $*"
    local start=$SECONDS
    if "$@"; then
        log "$name: ok ($((SECONDS - start)) s)"
    else
        log "$name: FAILED ($((SECONDS - start)) s)"
        FAILED+=("$name")
    fi
}

command -v cargo >/dev/null 2>&1 || die "cargo not found (install the Rust toolchain with rustup)"

ensure_postgres
ensure_rabbitmq
setup_reflink_fs
ensure_iscsi
setup_venv
setup_keystone_venv
setup_glance_venv

export PATH="$ROOT/.venv/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step "cargo fmt" cargo fmt --all -- --check

# The test build: the server binary gets the test-only `fake` driver and the
# fault-injection layer the e2e tests configure. Every cargo line below uses
# the same selection and features, so they share one build.
FEATURES=(--workspace --features scoria/fault-injection)
log "cargo build ${FEATURES[*]} --all-targets"
cargo build "${FEATURES[@]}" --all-targets || die "cargo build failed"

step "cargo clippy" cargo clippy "${FEATURES[@]}" --all-targets -- -D warnings
step "cargo test" cargo test "${FEATURES[@]}"
# Workspace-wide selection reuses the build above (a -p selection resolves
# features differently and would rebuild every dependency).
step "reflink test" cargo test "${FEATURES[@]}" --test file_compliance -- --ignored

export SCORIA_BIN="${SCORIA_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/scoria}"
# Two workers, one test file each: much of a file's time is waiting on services.
step "e2e (pytest)" .venv/bin/pytest -p no:cacheprovider -v -rfEs -n 2 --dist loadfile --durations=10 tests/e2e

if [ "${#FAILED[@]}" -gt 0 ]; then
    printf '\nrun.sh: FAILED: %s\n' "${FAILED[*]}" >&2
    exit 1
fi
printf '\nrun.sh: all checks passed\n' >&2
