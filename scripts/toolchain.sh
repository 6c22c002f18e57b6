# Sourced by run-local.sh and test.sh: put a cargo at least as new as
# Cargo.toml's rust-version on PATH, or say how to get one and stop.
# Debian's own rustc is older than dockgate needs, so this is the one thing
# the scripts do not install themselves: rustup installs per user, and the
# choice of toolchain is the operator's.

need_cargo() {
  local want found dir home
  want=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -1)
  if ! command -v cargo >/dev/null 2>&1; then
    # sudo resets PATH: look where rustup puts cargo for root and for the
    # user who ran sudo (using that user's toolchains, root's cargo cache).
    for home in "${HOME:-}" "${SUDO_USER:+$(getent passwd "$SUDO_USER" | cut -d: -f6)}"; do
      dir="${home}/.cargo/bin"
      if [ -n "$home" ] && [ -x "$dir/cargo" ]; then
        export PATH="$dir:$PATH"
        [ -d "$home/.rustup" ] && [ -z "${RUSTUP_HOME:-}" ] && export RUSTUP_HOME="$home/.rustup"
        break
      fi
    done
  fi
  found=$(cargo --version 2>/dev/null | awk '{print $2}' || true)
  if [ -n "$found" ] && version_at_least "$found" "$want"; then
    return 0
  fi
  cat >&2 <<MSG
dockgate needs Rust $want or newer; ${found:+this machine has cargo $found}${found:-cargo was not found}.
Debian's packaged Rust is older than that. Install a current toolchain with rustup, as the user
who runs this script (root here), then run this script again:

  apt-get install -y curl ca-certificates
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  . "\$HOME/.cargo/env"

(rustup keeps the toolchain in ~/.cargo and ~/.rustup; https://rustup.rs explains the options.)
MSG
  exit 3
}

# version_at_least 1.90.0 1.88 -> true
version_at_least() {
  local have=$1 want=$2
  [ "$(printf '%s\n%s\n' "$want" "${have%%-*}" | sort -V | head -1)" = "$want" ]
}

# Re-run the calling script as root (apt-get, /run, the registry's data dir).
need_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  if command -v sudo >/dev/null 2>&1; then
    echo "==> needs root for apt-get: re-running with sudo" >&2
    exec sudo "$0" "$@"
  fi
  echo "run this as root: it installs packages with apt-get" >&2
  exit 1
}
