#!/usr/bin/env bash
# Builds a Rust plugin folder (the argument) into its plugin.wasm with Debian's rustc/cargo 1.63
# (+ libstd-rust-dev-wasm32) for wasm32-wasi, using the crates pinned by its Cargo.lock.
# Dependencies are vendored into <folder>/vendor (gitignored); the build itself runs offline.
# Safe to re-run, from any directory. Called by each Rust plugin's build.sh.
set -euo pipefail
cd "$1"
# The cdylib is named after the package, with '-' as '_'.
CRATE=$(sed -n 's/^name *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1 | tr - _)

DEB_RUSTC=/usr/bin/rustc
DEB_CARGO=/usr/bin/cargo
TARGET=wasm32-wasi

# 1. Toolchain: Debian's rustc + cargo + the wasm32 standard library.
if [[ ! -x $DEB_RUSTC || ! -x $DEB_CARGO || ! -d /usr/lib/rustlib/$TARGET ]]; then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  pkgs=(rustc cargo libstd-rust-dev-wasm32)
  # Only refresh the package lists when installing from the current ones fails.
  $SUDO apt-get install -y "${pkgs[@]}" || { $SUDO apt-get update && $SUDO apt-get install -y "${pkgs[@]}"; }
fi

# 2. Vendor the crates listed in Cargo.lock (skipped when vendor/ already matches Cargo.lock).
lock_sum=$(sha256sum Cargo.lock | cut -d' ' -f1)
if [[ ! -f vendor/.cargo-lock.sha256 || $(cat vendor/.cargo-lock.sha256) != "$lock_sum" ]]; then
  RUSTUP_CARGO="${CARGO_HOME:-$HOME/.cargo}/bin/cargo"
  if [[ -x $RUSTUP_CARGO ]] && "$RUSTUP_CARGO" --version >/dev/null 2>&1; then
    # A modern cargo speaks the sparse crates.io protocol natively; --locked keeps Cargo.lock (v3) untouched.
    "$RUSTUP_CARGO" vendor --locked vendor >/dev/null
  else
    # Debian's cargo (1.65) defaults to the git index on github.com; use its (unstable) sparse support instead.
    __CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS=nightly CARGO_REGISTRIES_CRATES_IO_PROTOCOL=sparse \
      "$DEB_CARGO" -Z sparse-registry vendor --locked vendor >/dev/null
  fi
  echo "$lock_sum" > vendor/.cargo-lock.sha256
fi

# 3. Build offline from vendor/ with Debian's toolchain (no .cargo/config.toml needed).
#    --remap-path-prefix keeps the checkout's absolute path out of the module (reproducible output).
RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$PWD=." RUSTC=$DEB_RUSTC "$DEB_CARGO" build --release --target "$TARGET" --offline --locked \
  --config 'source.crates-io.replace-with="vendored-sources"' \
  --config "source.vendored-sources.directory=\"$PWD/vendor\""

install -m 644 "target/$TARGET/release/$CRATE.wasm" plugin.wasm
echo "built $(pwd)/plugin.wasm ($(wc -c < plugin.wasm) bytes)"
