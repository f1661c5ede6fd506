#!/usr/bin/env bash
# Installs everything the node needs, then runs it or its tests.
#
#   bash bootstrap.sh run            install, then start the node (REST API + DICOM SCP)
#   bash bootstrap.sh test [ARGS]    install, then run the whole test suite (ARGS go to pytest)
#   bash bootstrap.sh lock           rewrite requirements.lock from the current virtualenv
#
# Safe to run again: each step is skipped when already done. Works on a fresh
# Debian 12 / Ubuntu machine (as root or with sudo); needs Python 3.11.
# Environment: CTNODE_VENV (default .venv), CTNODE_TORCH_INDEX_URL (a pip index
# serving the CPU build of torch 2.13.0, if the default index would give a CUDA
# build), and every CTNODE_* setting of the node (see README, "Configuration").
set -euo pipefail
cd "$(dirname "$0")"

MODE="${1:-}"
shift || true
VENV="${CTNODE_VENV:-.venv}"
RUN_PACKAGES=(python3-venv dcmtk fonts-dejavu-core)
TEST_PACKAGES=(dicom3tools orthanc orthanc-python orthanc-dicomweb)

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

install_debian_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    # Debian's orthanc package starts a system service; our tests start their own.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            command -v "$candidate"
            return 0
        fi
    done
    say "Python 3.11 is required (Debian 12 ships it as python3; elsewhere install python3.11)"
    exit 1
}

install_python_packages() {
    local stamp="$VENV/.ctnode-installed"
    local want
    want="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtualenv $VENV"
        "$(find_python)" -m venv "$VENV"
    fi
    local pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    # torch first, pinned: a later unpinned requirement must not pull another build.
    say "installing torch 2.13.0 (CPU)"
    if [ -n "${CTNODE_TORCH_INDEX_URL:-}" ]; then
        "${pip[@]}" --index-url "$CTNODE_TORCH_INDEX_URL" torch==2.13.0
    else
        "${pip[@]}" torch==2.13.0
    fi
    say "installing locked Python packages"
    "${pip[@]}" -r requirements.lock
    "${pip[@]}" --no-deps -e .
    echo "$want" > "$stamp"
}

case "$MODE" in
    run)
        install_debian_packages "${RUN_PACKAGES[@]}"
        install_python_packages
        say "starting the node (REST API on ${CTNODE_API__HOST:-127.0.0.1}:${CTNODE_API__PORT:-8000})"
        exec "$VENV/bin/ctnode" node "$@"
        ;;
    test)
        install_debian_packages "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
        install_python_packages
        say "running the test suite"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    lock)
        "$VENV/bin/python" -m pip list --format=freeze --exclude-editable --disable-pip-version-check \
            | grep -v -E '^(torch|ctnode|pip)[= ]' > requirements.lock
        say "wrote requirements.lock ($(wc -l < requirements.lock) packages)"
        ;;
    *)
        sed -n '2,12p' "$0" >&2
        exit 2
        ;;
esac
