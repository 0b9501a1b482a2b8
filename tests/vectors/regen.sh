#!/usr/bin/env bash
# Regenerates tests/vectors/*.tsv from Kubo (the reference peer): the Kubo interop
# tests build the generated trees (tests/common/trees.rs) and, with
# NARFS_BLESS_VECTORS=1, write what `ipfs add -r --cid-version=1 --only-hash` printed
# under each profile's Kubo settings. Then it checks that Kubo, the JS importer and
# narfs all give exactly those CIDs. Needs `ipfs` (.ci/kubo.sh) and Node with
# `npm ci --prefix interop`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/go/bin:$PATH"
kubo_tests=(generated_trees_match_kubo_under_both_profiles
  a_100000_entry_directory_matches_kubo_under_both_profiles)
for t in "${kubo_tests[@]}"; do
  NARFS_BLESS_VECTORS=1 cargo test --test kubo_interop "$t" -- --exact
done
for t in "${kubo_tests[@]}"; do
  CI=1 cargo test --test kubo_interop "$t" -- --exact
done
CI=1 cargo test --test ipfs_interop the_js_importer_gives_the_checked_in_vectors
cargo test --test cid_vectors
git diff --stat -- tests/vectors
