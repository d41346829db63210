#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the browser tests (tests/e2e/test_flower_browser.py).
# Idempotent: does nothing when both are already there. Needs root (as on CI) or sudo.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; then
    echo "install-browser: already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"), $("$CHROMEDRIVER" --version 2>/dev/null | head -n1 || echo "$CHROMEDRIVER")"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-browser: $CHROMIUM is missing and this is not root (no sudo): install Debian's chromium and chromium-driver packages" >&2
        exit 1
    fi
fi

echo "install-browser: $CHROMIUM or $CHROMEDRIVER is missing: installing Debian's chromium and chromium-driver"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq chromium chromium-driver >/dev/null
echo "install-browser: installed: $("$CHROMIUM" --version 2>/dev/null), $("$CHROMEDRIVER" --version | head -n1)"
