#!/usr/bin/env bash
# Installs what Gongdai needs, builds it with warnings as errors and ASan/UBSan (the
# "ci" preset), and runs every test. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-debian.sh
# Sources follow .clang-format (Google style); a change that does not is refused here.
git ls-files -z '*.cc' '*.h' | xargs -0 clang-format --dry-run --Werror
cmake --preset ci
cmake --build --preset ci --parallel 2
ctest --preset ci --parallel 2
