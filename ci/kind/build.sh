#!/usr/bin/env bash
# Builds what the pipeline runs, with the CNPG target compiled in: the test
# binary of tests/cnpg_kind.rs and the `chaos` command line. Run before the
# cluster exists, so that compiling does not eat into its time.
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

cd "$REPO_ROOT"
cargo test --locked -p chaos-tests --features "$(cnpg_features tests)" --test cnpg_kind --no-run
cargo build --locked -p chaos-cli --features "$(cnpg_features chaos-cli)"
