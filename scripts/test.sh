#!/usr/bin/env bash
# Installs what Gongdai needs, builds it with warnings as errors and ASan/UBSan (the
# "ci" preset), and runs every test. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-debian.sh
cmake --preset ci
cmake --build --preset ci --parallel 2
ctest --preset ci --parallel 2
