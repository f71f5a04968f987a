#!/usr/bin/env bash
# Install what the end-to-end browser tests (tests/e2e) need, idempotently.
#
#   - Debian's chromium + chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver), via apt
#   - a Python venv at ${HUBDESK_VENV:-$HOME/.cache/hubdesk/venv} with tests/e2e/requirements.txt
#
# Meant to run as root on a Debian 12 machine (no Docker). Safe to re-run: each step is skipped
# when already done. Afterwards:  "$HUBDESK_VENV/bin/pytest" tests/e2e -q
#
# Env:
#   HUBDESK_VENV   venv location (default $HOME/.cache/hubdesk/venv)
#   PYTHON         interpreter used to create the venv (default: python3 on PATH)
set -euo pipefail

log() { printf '[e2e-deps] %s\n' "$*"; }
die() { printf '[e2e-deps] ERROR: %s\n' "$*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQS="$ROOT/tests/e2e/requirements.txt"
VENV="${HUBDESK_VENV:-$HOME/.cache/hubdesk/venv}"
PYTHON="${PYTHON:-python3}"
export DEBIAN_FRONTEND=noninteractive

[ -f "$REQS" ] || die "missing $REQS"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -E"; fi
fi

# apt-get, waiting (up to 15 min) for another apt/dpkg run to release its locks.
APT_GET=(apt-get -o DPkg::Lock::Timeout=900 -o Acquire::Retries=3)

apt_updated=0
apt_install() {
    if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
        die "need root (or sudo) to apt-get install: $*"
    fi
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        $SUDO "${APT_GET[@]}" update -q
        apt_updated=1
    fi
    log "apt-get install -y $*"
    $SUDO "${APT_GET[@]}" install -y -q "$@"
}

# --- 1. Chromium + ChromeDriver (Debian packages) ------------------------------------------
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    log "chromium and chromedriver already installed: skipping apt"
else
    log "installing chromium and chromium-driver from Debian"
    apt_install chromium chromium-driver
fi
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium missing after install"
[ -x /usr/bin/chromedriver ] || die "/usr/bin/chromedriver missing after install"
log "$(/usr/bin/chromium --version 2>/dev/null | head -n1)"
log "$(/usr/bin/chromedriver --version 2>/dev/null | head -n1)"

# --- 2. Python venv ---------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON on PATH (set PYTHON=...)"
# Stamp = hash of requirements.txt + interpreter version; a venv whose stamp matches and whose
# packages import is "complete" and is left alone.
REQ_HASH="$( (sha256sum < "$REQS"; "$PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
STAMP="$VENV/.hubdesk-e2e-stamp"

venv_complete() {
    [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/pytest" ] && [ -f "$STAMP" ] \
        && [ "$(cat "$STAMP")" = "$REQ_HASH" ] \
        && "$VENV/bin/python" -c 'import pytest, selenium, requests, jupyterhub, oauthenticator, authlib, idpyoidc' >/dev/null 2>&1 \
        && [ -x "$VENV/bin/configurable-http-proxy" ]
}

if venv_complete; then
    log "venv $VENV is complete (requirements unchanged): skipping pip"
else
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        # Debian's own python3 needs python3-venv for ensurepip.
        if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            log "$PYTHON lacks venv/ensurepip: installing python3-venv"
            apt_install python3-venv
        fi
        log "creating venv $VENV with $("$PYTHON" --version 2>&1)"
        rm -rf "$VENV"
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV"
    else
        log "venv $VENV exists but is incomplete or outdated: updating it"
    fi
    log "pip install -r $REQS"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -r "$REQS"
    venv_complete_check_msg="$("$VENV/bin/python" -c 'import pytest, selenium, requests, jupyterhub, oauthenticator' 2>&1)" \
        || die "venv packages do not import: $venv_complete_check_msg"
    [ -x "$VENV/bin/configurable-http-proxy" ] || die "configurable-http-proxy not installed in $VENV/bin"
    echo "$REQ_HASH" > "$STAMP"
fi

"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
names = ["pytest", "selenium", "requests", "jupyterhub", "oauthenticator", "configurable-http-proxy"]
print("[e2e-deps] " + ", ".join(f"{n} {md.version(n)}" for n in names))
PY
log "done. Run the tests with:  $VENV/bin/pytest $ROOT/tests/e2e -q"
