# Sourced by the suites that drive a real `siyu` with pinned Python tools
# (tests/sdk/run.sh, tests/api/run.sh), from their own directory:
# SIYU_BIN is the given binary, else `siyu` built in debug; ./.venv holds
# ./requirements.txt, installed again when missing or different.
if [ -z "${SIYU_BIN:-}" ]; then
  (cd ../.. && cargo build -p siyu --quiet)
  SIYU_BIN="${CARGO_TARGET_DIR:-$(cd ../.. && pwd)/target}/debug/siyu"
fi
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt .venv/requirements.txt; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/requirements.txt
fi
