#!/usr/bin/env bash
# System packages the browser tests need: Debian's chromium (driven by the playwright package; no browser download).
# Idempotent and quiet; .ci/run calls it before the tests.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null || true
