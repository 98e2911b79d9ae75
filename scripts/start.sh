#!/usr/bin/env bash
# Build and start Junction on a fresh Debian machine, as root: installs the system packages
# the build links against (OpenSSL for DTLS), then `junction start` with any arguments
# given (e.g. `--config etc/junction.conf`).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need_apt=()
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
exec cargo run --release -p junction -- start "$@"
