#!/usr/bin/env bash
# Builds the pinned Kubo (the reference IPFS node of the tests) into $HOME/go/bin/ipfs
# from the wrapper module .ci/kubo (see its tools.go for why not `go install`), unless
# `ipfs version` there already prints the pinned version.
set -euo pipefail
cd "$(dirname "$0")/kubo"
bin="$HOME/go/bin/ipfs"
want="$(sed -n 's/^require github.com\/ipfs\/kubo v\(.*\)$/\1/p' go.mod)"
if [ -x "$bin" ] && [ "$("$bin" version 2>/dev/null)" = "ipfs version $want" ]; then
  echo "kubo: reusing $bin (ipfs version $want)"
  exit 0
fi
command -v go >/dev/null || { echo "kubo: go is not installed" >&2; exit 1; }
mkdir -p "$(dirname "$bin")"
start=$(date +%s)
go build -o "$bin" github.com/ipfs/kubo/cmd/ipfs
echo "kubo: built $bin ($("$bin" version)) in $(( $(date +%s) - start )) s"
