#!/usr/bin/env bash
# Installs every Debian 12 package that Gongdai needs to build, test and benchmark.
# Idempotent: packages already present are left alone. Works as root or through sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  librocksdb-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libboost-dev
  libssl-dev
  libjemalloc-dev  # the allocator of the server, the tools and the benchmarks (not under sanitizers)
  libabsl-dev
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libcli11-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
  golang-github-gogo-googleapis-dev  # google/rpc/*.proto (status, error details), compiled with protoc
  clang-format
  openssl  # the TLS end-to-end test makes its own certificate
  postgresql-15  # bench/run-postgres-peer.sh: initdb, postgres, pgbench (psql comes with it)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
