#!/usr/bin/env bash
# Browser tests of the console: builds `siyu` (unless SIYU_BIN is given),
# installs playwright-core (npm ci, pinned by package-lock.json) and runs
# console.test.mjs, channels.test.mjs, workbench.test.mjs, editors.test.mjs, h5.test.mjs (the customer pages), customers.test.mjs, inbox.test.mjs (the operator inbox), live.test.mjs (live sessions), compliance.test.mjs (the inbox's archive, report and settings), partners.test.mjs (达人分销), ai.test.mjs (the inbox's AI suggestions and summary, against a fake OpenAI-compatible server) and moments.test.mjs (朋友圈 SOP) against Debian's Chromium (/usr/bin/chromium or $CHROMIUM).
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${SIYU_BIN:-}" ]; then
  (cd ../.. && cargo build -p siyu --quiet)
  SIYU_BIN="${CARGO_TARGET_DIR:-$(cd ../.. && pwd)/target}/debug/siyu"
fi
want="$(node -p "require('./package-lock.json').packages['node_modules/playwright-core'].version")"
have="$(node -p "try { require('./node_modules/playwright-core/package.json').version } catch { '' }")"
if [ "$want" != "$have" ]; then
  npm ci --silent --no-audit --no-fund
fi
SIYU_BIN="$SIYU_BIN" node console.test.mjs
SIYU_BIN="$SIYU_BIN" node channels.test.mjs
SIYU_BIN="$SIYU_BIN" node workbench.test.mjs
SIYU_BIN="$SIYU_BIN" node h5.test.mjs
SIYU_BIN="$SIYU_BIN" node editors.test.mjs
SIYU_BIN="$SIYU_BIN" node customers.test.mjs
SIYU_BIN="$SIYU_BIN" node inbox.test.mjs
SIYU_BIN="$SIYU_BIN" node live.test.mjs
SIYU_BIN="$SIYU_BIN" node compliance.test.mjs
SIYU_BIN="$SIYU_BIN" node partners.test.mjs
SIYU_BIN="$SIYU_BIN" node ai.test.mjs
SIYU_BIN="$SIYU_BIN" node moments.test.mjs
