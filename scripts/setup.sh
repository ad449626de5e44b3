#!/usr/bin/env bash
# Installs every Debian 12 package sd2 needs to build, test and run. Idempotent: packages
# already present are skipped, so a second run takes seconds.
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git clang-format
  libtorch-dev libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  libzmq3-dev cppzmq-dev
  libsqlite3-dev sqlite3
  libboost-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev libpcre2-dev
  zlib1g-dev procps hostname openssh-client
  slurm-wlm munge
  python3 python3-torch python3-sklearn python3-pil python3-numpy
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#PACKAGES[@]} packages present"
fi
