#!/bin/sh
# Install everything pmzfs needs on Debian, then run the demo or the tests.
#
#   ./bootstrap.sh demo [MOUNTPOINT]   mount the offline demo library
#   ./bootstrap.sh test [PYTEST ARGS]  run the whole test suite
#
# Run it as root on Debian 12 or newer. Every step is skipped when it is
# already done, so running it again is cheap.
set -eu

cd "$(dirname "$0")"

# System packages: FUSE and the headers pyfuse3 compiles against, Python,
# and the real programs the tests drive (rsync, ffmpeg, tar, systemd-analyze).
PACKAGES="fuse3 libfuse3-dev pkg-config gcc python3 python3-venv python3-dev
rsync ffmpeg tar curl ca-certificates systemd"
BENCH_PACKAGES="rclone"

usage() {
    echo "usage: $0 demo [MOUNTPOINT] | test [PYTEST ARGS] | bench [ARGS]" >&2
    exit 2
}

install_system_packages() {
    missing=""
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
            missing="$missing $package"
        fi
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: missing Debian packages:$missing; run this script as root" >&2
        exit 1
    fi
    echo "bootstrap: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $missing >/dev/null
}

install_python_packages() {
    python=$(command -v python3)
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "bootstrap: pmzfs needs Python 3.11 or newer; $python is older" >&2
        exit 1
    fi
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
    fi
    # Reinstall only when the project's dependencies changed.
    stamp=.venv/.pmzfs-installed
    wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        .venv/bin/pip install --quiet --upgrade pip
        .venv/bin/pip install --quiet -e '.[test,bench]'
        echo "$wanted" > "$stamp"
    fi
}

install_fstab_helper() {
    # mount(8) runs /sbin/mount.fuse.pmzfs for fstab lines of type fuse.pmzfs.
    # A link that this script made for another clone is replaced; one that
    # points anywhere else (an installation in /opt, say) is left alone.
    helper=/sbin/mount.fuse.pmzfs
    [ "$(id -u)" -eq 0 ] || return 0
    if [ -e "$helper" ]; then
        case "$(readlink "$helper" 2>/dev/null)" in
            */.venv/bin/mount.pmzfs) ;;
            *) return 0 ;;
        esac
    fi
    ln -sf "$PWD/.venv/bin/mount.pmzfs" "$helper"
}

[ $# -ge 1 ] || usage
command=$1
shift

case "$command" in
    demo)
        install_system_packages $PACKAGES
        install_python_packages
        install_fstab_helper
        mountpoint=${1:-/tmp/pmzfs-demo}
        mkdir -p "$mountpoint"
        exec .venv/bin/pmzfs demo "$mountpoint"
        ;;
    test)
        install_system_packages $PACKAGES
        install_python_packages
        install_fstab_helper
        exec .venv/bin/python -m pytest "$@"
        ;;
    bench)
        install_system_packages $PACKAGES $BENCH_PACKAGES
        install_python_packages
        exec .venv/bin/python -m bench "$@"
        ;;
    *)
        usage
        ;;
esac
