#!/usr/bin/env bash
# Installs everything sd2 needs to build, test and run, on Debian 12:
#   1. Debian's packages (compilers, MPI, ZeroMQ, SQLite, Slurm, ...);
#   2. a project-local Python virtual environment, .venv (git-ignored), with the pinned packages
#      of scripts/requirements.txt: PyPI's torch (CUDA-enabled; its LibTorch is what the C++
#      build links), transformers, scikit-learn, numpy, pillow.
# Idempotent: packages already present are skipped, and the venv is left alone while it holds
# the pinned versions (a stamp with the requirements' hash), so a second run takes seconds.
# Env: SD2_VENV (default <repo>/.venv).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git clang-format
  libopenmpi-dev openmpi-bin
  libzmq3-dev cppzmq-dev
  libsqlite3-dev sqlite3
  libboost-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev libpcre2-dev libicu-dev
  zlib1g-dev procps hostname openssh-client
  slurm-wlm munge
  texlive-latex-base texlive-latex-recommended
  python3 python3-venv
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
  echo "setup: all ${#PACKAGES[@]} Debian packages present"
fi

venv="${SD2_VENV:-$repo/.venv}"
req="$repo/scripts/requirements.txt"
want="$(sha256sum "$req" | cut -d' ' -f1)"
stamp="$venv/.sd2-requirements"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  echo "setup: $venv holds the pinned Python packages"
  exit 0
fi
start=$SECONDS
# The pyenv/system python3 on PATH; Debian's /usr/bin/python3 (3.11, python3-venv) otherwise.
py="$(command -v python3 || echo /usr/bin/python3)"
echo "setup: creating $venv with $("$py" --version) and installing scripts/requirements.txt"
echo "setup: (a fresh machine downloads PyPI's CUDA-enabled torch and its nvidia-* wheels, ~4 GB)"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'import torch, transformers, sklearn, numpy, PIL; print("setup: torch", torch.__version__, "CUDA", torch.version.cuda)'
echo "$want" >"$stamp"
echo "setup: Python environment ready in $((SECONDS - start)) s"
