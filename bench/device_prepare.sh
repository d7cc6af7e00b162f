#!/usr/bin/env bash
# Prepare bench/device_check.sh for a bare GPU machine. Run HERE (a machine with PyPI), not there.
#
# The device machine has Python 3.12 with torch, numpy, pyarrow, scipy, click, tqdm, pyyaml and
# fsspec, but not this project's other needs, and it cannot download anything. This script
# fetches cp312 manylinux wheels of the missing packages into .whl/ and copies the reference kit
# (SpeechSR weights, audio: ../shared/reference does not travel) into .devkit/reference. Both
# folders are git-ignored; name them in the device call's `carry`. Ray (79 MB) is left out: it
# does not fit in what one call can carry (64 MiB), so the checks that need it report "skipped".
# transformers is pinned below 5 here (pyproject), as the machine's own 5.x is not what users run.
set -euo pipefail
cd "$(dirname "$0")/.."

PIP=${PIP:-python3 -m pip}
KIT=${HSP_REFERENCE_DIR:-../shared/reference}
WHEELS=(
  "transformers==4.57.6" "huggingface_hub==0.36.2" "tokenizers==0.22.2"  # transformers < 5, as pyproject pins
  "soundfile==0.14.0" "cffi==2.1.1" "pycparser==3.12"                    # audio I/O
  "soxr==1.1.0" "braceexpand==0.1.7"                                      # resampling, tar specs
)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)

rm -rf .whl .devkit
mkdir -p .whl .devkit
args=(download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl)
for platform in "${PLATFORMS[@]}"; do args+=(--platform "$platform"); done
$PIP "${args[@]}" "${WHEELS[@]}"

if [[ ! -f "$KIT/README.md" ]]; then
  echo "reference kit not found at $KIT (set HSP_REFERENCE_DIR)" >&2
  exit 1
fi
cp -r "$KIT" .devkit/reference
chmod -R u+w .devkit

for folder in .whl .devkit; do
  git check-ignore -q "$folder/" || { echo "$folder/ is not git-ignored: add /$folder/ to .gitignore" >&2; exit 1; }
done
size=$(du -sm .whl .devkit | awk '{s += $1} END {print s}')
echo "prepared: $(ls .whl | wc -l) wheels + reference kit, ${size} MiB (limit of a device call: 64 MiB with the tree)"
if (( size > 56 )); then
  echo "too big to carry with the working tree" >&2
  exit 1
fi
echo "next: run 'bash bench/device_check.sh' on the device machine with carry [.whl, .devkit]"
