#!/usr/bin/env bash
# Installs saepipe's build and test dependencies from Debian packages (idempotent).
set -euo pipefail
PKGS=(build-essential cmake pkg-config git
      openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools
      libtomlplusplus-dev nlohmann-json3-dev libcli11-dev
      libopenblas-dev libopenblas0-pthread
      libgtest-dev libbenchmark-dev
      slurm-wlm munge clang libclang-rt-14-dev
      libicu-dev chromium-headless-shell
      python3 python3-venv python3-numpy python3-h5py python3-torch python3-regex
      fortunes)   # English text: the SmolLM2 example (jobs/smollm2_*.toml), e2e_gguf_model, e2e_smollm2_quick
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
