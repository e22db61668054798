#!/bin/sh
# Builds the Python code corpus of issue 14: installs the Debian packages listed in scripts/code-packages.txt
# (apt-get, as root or through sudo), then collects the standard library's and those packages' .py files into
# JSONL documents with a license/version manifest (scripts/code-corpus.mjs). The corpus stays outside git (data/).
# Usage: scripts/code-corpus.sh [--out=data/code-corpus] [--packages=scripts/code-packages.txt] [--no-install]
set -eu
packages=scripts/code-packages.txt
install=yes
for a in "$@"; do
  case "$a" in
    --packages=*) packages=${a#--packages=} ;;
    --no-install) install=no ;;
  esac
done
[ -f "$packages" ] || { echo "code-corpus: $packages: no such package list" >&2; exit 2; }
names=$(sed -e 's/#.*//' "$packages" | awk 'NF { print $1 }')
if [ "$install" = yes ]; then
  if [ "$(id -u)" = 0 ]; then apt=apt-get; elif command -v sudo >/dev/null; then apt="sudo apt-get"; else
    echo "code-corpus: installing needs root; run as root, or install these and pass --no-install:" >&2
    echo "  apt-get install --no-install-recommends" $names >&2
    exit 2
  fi
  # shellcheck disable=SC2086 # one word per package name
  DEBIAN_FRONTEND=noninteractive $apt install -y --no-install-recommends $names
fi
[ -f dist/src/data/code-corpus.js ] || npx tsc -p .
exec node scripts/code-corpus.mjs "$@"
