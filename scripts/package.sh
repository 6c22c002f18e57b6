#!/usr/bin/env bash
# Builds the Debian package: target/debian/dockgate_<version>-1_<arch>.deb
# (path printed last). The binary, completions and man pages come from the
# same release build; cargo-deb is installed once and then reused.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "==> cargo install cargo-deb"
  cargo install cargo-deb --locked --quiet
fi

cargo build --release --quiet
bin=target/release/dockgate
out=target/package
rm -rf "$out"
mkdir -p "$out/completions" "$out/man"
# The shipped binary: debug info split off, symbol table kept (scripts/release.sh).
DIST_DIR="$out/dist" bash scripts/release.sh "$bin" >/dev/null

# The unit as installed by the package: the binary lives in /usr/bin.
sed 's|/usr/local/bin/dockgate|/usr/bin/dockgate|g' systemd/dockgate.service >"$out/dockgate.service"
"$bin" completions bash >"$out/completions/dockgate"
"$bin" completions zsh >"$out/completions/_dockgate"
"$bin" completions fish >"$out/completions/dockgate.fish"
"$bin" man --out "$out/man" >/dev/null
# The credential helper is the same binary under another name (argv[0]): a
# relative link, kept as a link by cargo-deb since "dockgate" is not beside it.
ln -sfn dockgate "$out/docker-credential-dockgate"
gzip -9n "$out"/man/*.1

cargo deb --no-build --no-strip --quiet >"$out/deb-path"
deb=$(tail -n 1 "$out/deb-path")
dpkg-deb --info "$deb" >/dev/null
echo "$deb"
