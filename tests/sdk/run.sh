#!/usr/bin/env bash
# SDK compatibility suite: the official Segment and RudderStack libraries
# (Python, Node, and analytics-next in Debian's Chromium) send to a real
# `siyu serve`; sdk.test.mjs checks what landed through siyu's API.
# Builds `siyu` (unless SIYU_BIN is given) and installs the pinned SDKs
# into ./.venv (requirements.txt) and ./node_modules (package-lock.json)
# when they are missing or differ.
set -euo pipefail
cd "$(dirname "$0")"
. ../lib/siyu_and_venv.sh
if ! node -e '
  const p = require("./package.json");
  for (const [n, v] of Object.entries(p.dependencies))
    if (require(`./node_modules/${n}/package.json`).version !== v) process.exit(1);
' 2>/dev/null; then
  npm ci --silent --no-audit --no-fund
fi
SIYU_BIN="$SIYU_BIN" node sdk.test.mjs
