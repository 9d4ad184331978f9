#!/usr/bin/env bash
# Build cost of cm-api for a new user (issue 22): a fresh binary crate that
# depends on cm-api (by path, on this checkout) and makes one call.
#
#   bash crates/api/benches/build-cost.sh [-- cargo features for cm-api]
#
# Once every dependency is built, it times, in release and in debug:
#   - cm-api-gen + cm-api (+ the one-line binary): `cargo clean -p` them, build;
#   - reqwest alone, the baseline of the same run: `cargo clean -p reqwest`,
#     `cargo build -p reqwest`.
# and prints seconds and the ratio. A benchmark, not a test: compare ratios
# and runs on the same machine only. Needs only crates.io (Cargo.lock is the
# workspace's, so the versions are the ones CI builds).
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
features="${*:-}"
features="${features#-- }"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/app/src"
cp "$root/Cargo.lock" "$work/app/Cargo.lock"
if [ -n "$features" ]; then
  dep="cm-api = { path = \"$root/crates/api\", default-features = false, features = [$(printf '"%s",' $features | sed 's/,$//')] }"
else
  dep="cm-api = { path = \"$root/crates/api\" }"
fi
cat >"$work/app/Cargo.toml" <<EOF
[package]
name = "build-cost-app"
version = "0.1.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
$dep
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
EOF
cat >"$work/app/src/main.rs" <<'EOF'
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = cm_api::Client::from_env()?;
    let projects = client.list_projects().send().await?;
    println!("{} projects", projects.projects.len());
    Ok(())
}
EOF

cd "$work/app"
export CARGO_TARGET_DIR="$work/target"
seconds() { # prints the wall time of "$@" in seconds, quietly
  local start end
  start=$(date +%s.%N)
  "$@" --quiet >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@"; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print(f\"{$end - $start:.1f}\")"
}

echo "machine: $(nproc) cores, $(uname -sm); $(rustc --version)"
echo "cm-api features: ${features:-default}"
for profile in release debug; do
  flag=()
  [ "$profile" = release ] && flag=(--release)
  cargo build "${flag[@]}" --quiet # every dependency, once
  cargo clean "${flag[@]}" --quiet -p cm-api-gen -p cm-api
  ours=$(seconds cargo build "${flag[@]}")
  cargo clean "${flag[@]}" --quiet -p reqwest
  base=$(seconds cargo build "${flag[@]}" -p reqwest)
  ratio=$(python3 -c "print(f\"{$ours / $base:.1f}\")")
  echo "$profile: cm-api-gen + cm-api ${ours} s; reqwest ${base} s (baseline); ratio ${ratio}x"
done
