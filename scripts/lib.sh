# Shared by scripts/run, scripts/test and scripts/bench: where builds go, and installing what
# they need on a fresh Debian machine. Source it; do not run it.

# One release build, outside the clone, so every checkout (and CI) on this machine reuses it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gregor-target}"
GREGOR_BIN="$CARGO_TARGET_DIR/release/gregor"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1
  fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The rocksdb crate runs bindgen (libclang) and compiles RocksDB's C++.
ensure_build_deps() {
  if ! command -v cargo >/dev/null; then
    echo "cargo is not installed: install Rust (https://rustup.rs) and try again" >&2
    exit 1
  fi
  if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
    echo "installing clang and libclang-dev (needed to build RocksDB)..." >&2
    apt_install clang libclang-dev
  fi
}

# maturin packs the release binary into the gregor-kafka wheel (scripts/wheel); pinned, in a venv
# of its own outside the clone.
MATURIN_VERSION=1.16.0
MATURIN_VENV="${GREGOR_MATURIN_VENV:-$HOME/.cache/gregor-maturin-venv}"
MATURIN="$MATURIN_VENV/bin/maturin"
ensure_maturin() {
  if [ "$("$MATURIN" --version 2>/dev/null)" != "maturin $MATURIN_VERSION" ]; then
    echo "installing maturin $MATURIN_VERSION into $MATURIN_VENV..." >&2
    python3 -m venv "$MATURIN_VENV"
    "$MATURIN_VENV/bin/pip" install -q --disable-pip-version-check "maturin==$MATURIN_VERSION"
  fi
}

build_release() {
  echo "building gregor (release; the first build compiles RocksDB and takes a while)..." >&2
  cargo build --release --locked --bin gregor
}
