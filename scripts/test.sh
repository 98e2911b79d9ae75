#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as root: installs what the tests need,
# then runs the Rust tests (cargo-nextest) and the Python interop tests (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || need_apt+=(mosquitto)
# HAProxy writes the PROXY protocol headers in tests/python/test_proxy_protocol.py.
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
# `ss` reads a listener's backlog in the config key tests.
command -v ss >/dev/null 2>&1 || need_apt+=(iproute2)
# DTLS links against the system's OpenSSL; `openssl s_client` is the DTLS test client.
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# libcoap's coap-client is a CoAP test client nobody here wrote (plain UDP and DTLS-PSK).
command -v coap-client-openssl >/dev/null 2>&1 || need_apt+=(libcoap3-bin)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# Python interop clients live in a venv so the system Python stays untouched.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt

# The LwM2M device client nobody here wrote: the npm package lwm2m-node-lib, run by the
# machine's Node.js (Debian's nodejs and npm when the machine has none).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error >/dev/null

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz crate is outside the workspace: build every codec fuzz target with coverage
# instrumentation and give each a short run (a crash fails the suite).
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" ./scripts/fuzz.sh
cargo build --release --locked -p junction
cargo nextest run --workspace --locked --no-fail-fast

JUNCTION_BIN="$PWD/target/release/junction" .venv/bin/python -m pytest -q tests/python
