#!/usr/bin/env bash
# Installs what building and testing alert-center needs on a fresh Debian machine:
# the C toolchain bits librdkafka builds with, Chromium for the browser test, and tansu
# (a Kafka-compatible broker with persistent storage) for the broker-restart tests.
# Safe to run again: it installs only what is missing.
set -euo pipefail

need_apt=()
for pkg in pkg-config libssl-dev zlib1g-dev make gcc g++ chromium chromium-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# playwright-core drives that Chromium in the browser test (tests/browser/); it downloads
# no browser of its own.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ ! -d "$root/node_modules/playwright-core" ]]; then
    echo "setup: installing playwright-core (npm ci)"
    (cd "$root" && npm ci --no-audit --no-fund >/dev/null)
fi

# tansu 0.6.0 with its sqlite storage engine only, as a debug build: about 10 minutes
# on 2 cores, once (a release build with every engine takes over 15). The tests find
# it at target/tools/bin/tansu (tests/it/tansu_support.rs).
if [[ ! -x "$root/target/tools/bin/tansu" ]]; then
    echo "setup: building tansu 0.6.0 into target/tools (about 10 minutes, once)"
    CARGO_PROFILE_DEV_DEBUG=0 cargo install tansu --version 0.6.0 --locked \
        --features libsql --debug --root "$root/target/tools" --quiet
fi
