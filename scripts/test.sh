#!/usr/bin/env bash
# Runs twinrt's whole test suite on a fresh machine: installs what is
# missing, then formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install the Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    step "installing $component"
    rustup component add "$component"
  fi
done

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

if ! { command -v mosquitto >/dev/null 2>&1 || command -v /usr/sbin/mosquitto >/dev/null 2>&1; } \
  || ! command -v mosquitto_pub >/dev/null 2>&1; then
  step "installing mosquitto and mosquitto-clients (MQTT interop tests)"
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto mosquitto-clients
fi

if ! command -v promtool >/dev/null 2>&1; then
  step "installing prometheus (promtool validates the node's /metrics output)"
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
fi

if [ ! -x /usr/bin/chromium ]; then
  step "installing chromium (the dashboard's browser test)"
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  step "installing node.js and npm (the dashboard's browser test)"
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
fi

step "browser test driver"
# playwright-core at the version tests/browser/package-lock.json pins; it
# drives the system's Chromium and downloads no browser of its own.
playwright_want=$(node -p "require('./tests/browser/package-lock.json').packages['node_modules/playwright-core'].version")
playwright_have=$(node -p "require('./tests/browser/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [ "$playwright_want" != "$playwright_have" ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi

step "python test peers"
# The Modbus adapter's interop test talks to a real pymodbus server.
python3 -c "import pymodbus" 2>/dev/null || python3 -m pip install 'pymodbus==3.16.1'
# The MQTT adapter's Sparkplug B interop test talks to a real pysparkplug edge node.
python3 -c "import pysparkplug" 2>/dev/null || python3 -m pip install 'pysparkplug==0.6.1'

step "tests"
# Release-mode tests: the crash and recovery tests drive real node processes.
cargo test --workspace --locked --release
