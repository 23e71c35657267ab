#!/usr/bin/env bash
# Installs what Gongdai needs, builds the release binaries (gongdai-server, the gongdai
# client and gongdai-audit), and starts gongdai-server on
# 127.0.0.1:50051 with its embedded ledger in ./gongdai-data. Extra arguments go to the
# server (for example --demo, --business-date 2020-12-31, --listen 127.0.0.1:6000).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-debian.sh
cmake --preset release
cmake --build --preset release --parallel 2 --target gongdai-server gongdai gongdai-audit
exec build/release/server/gongdai-server --data-dir gongdai-data "$@"
