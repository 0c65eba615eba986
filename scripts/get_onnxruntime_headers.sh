#!/usr/bin/env bash
# Prints (stdout, one line, nothing else) a directory that holds ONNX Runtime's C/C++
# headers (onnxruntime_cxx_api.h); exits non-zero with the reason on stderr otherwise.
#
# Order:
#   1. $ONNXRUNTIME_INCLUDE_DIR, if set (must hold onnxruntime_cxx_api.h).
#   2. the cache <repo>/third_party_headers/onnxruntime (gitignored).
#   3. Debian trixie's libonnxruntime-dev (ONNX Runtime API 21), downloaded with a private
#      apt configuration whose archive URI is taken from this machine's own Debian source
#      file, and unpacked with dpkg-deb -x into the cache. Nothing is installed into the system.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/third_party_headers/onnxruntime"
suite="${DCN_ORT_HEADERS_SUITE:-trixie}"
package="libonnxruntime-dev"
keyring="/usr/share/keyrings/debian-archive-keyring.gpg"
log() { printf '[get_onnxruntime_headers] %s\n' "$*" >&2; }
fail() {
  log "error: $*"
  log "fix: point ONNXRUNTIME_INCLUDE_DIR at a directory containing onnxruntime_cxx_api.h" \
      "(e.g. from Debian's $package, or include/ of an ONNX Runtime release archive), e.g." \
      "ONNXRUNTIME_INCLUDE_DIR=/path/to/include bash scripts/setup.sh"
  exit 1
}
# A directory with the headers, as a path under $1 (the header may sit in a subfolder).
find_include_dir() {
  local hit
  hit="$(find "$1" -name onnxruntime_cxx_api.h -print -quit 2>/dev/null || true)"
  [ -n "$hit" ] && dirname "$hit"
}

if [ -n "${ONNXRUNTIME_INCLUDE_DIR:-}" ]; then
  [ -f "$ONNXRUNTIME_INCLUDE_DIR/onnxruntime_cxx_api.h" ] \
    || fail "ONNXRUNTIME_INCLUDE_DIR=$ONNXRUNTIME_INCLUDE_DIR has no onnxruntime_cxx_api.h"
  printf '%s\n' "$ONNXRUNTIME_INCLUDE_DIR"
  exit 0
fi

if [ -d "$cache" ] && dir="$(find_include_dir "$cache")"; then
  printf '%s\n' "$dir"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 \
    || fail "no cached headers in $cache and '$tool' is not available to download Debian's $package"
done
[ -f "$keyring" ] || fail "no cached headers in $cache and Debian's archive keyring $keyring is missing (apt-get install debian-archive-keyring)"

# The main archive's URI from this machine's Debian source file (deb822 or one-line format).
uri=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  # deb822: the first stanza with a URIs line whose Suites are not the security archive.
  uri="$(awk '
    function flush() { if (u != "" && s !~ /security/) { print u; found = 1; exit } u = ""; s = "" }
    /^[[:space:]]*$/ { flush(); next }
    /^URIs:/   { u = $2 }
    /^Suites:/ { s = $0 }
    END        { if (!found) flush() }' /etc/apt/sources.list.d/debian.sources | head -n1)"
fi
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
  uri="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list | head -n1)"
fi
[ -n "$uri" ] || fail "no cached headers in $cache and no Debian archive URI found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/download"
printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$uri" "$suite" > "$tmp/sources.list"
apt_opts=(
  -o "Dir::Etc::sourcelist=$tmp/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$tmp/lists"
  -o "Dir::Cache=$tmp/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"  # the private dirs belong to root; no _apt sandbox warnings
  -o "APT::Get::List-Cleanup=0"
)
log "downloading Debian $suite's $package into $cache (private apt configuration, nothing installed)"
apt-get "${apt_opts[@]}" -qq update >"$tmp/update.log" 2>&1 \
  || { cat "$tmp/update.log" >&2; fail "apt-get update for Debian $suite failed (see above)"; }
( cd "$tmp/download" && apt-get "${apt_opts[@]}" -qq download "$package" ) >"$tmp/download.log" 2>&1 \
  || { cat "$tmp/download.log" >&2; fail "apt-get download $package (Debian $suite) failed (see above)"; }
deb="$(find "$tmp/download" -name "${package}_*.deb" -print -quit)"
[ -n "$deb" ] || fail "apt-get download left no ${package}_*.deb"
mkdir -p "$tmp/x"
dpkg-deb -x "$deb" "$tmp/x"
dir="$(find_include_dir "$tmp/x")" || fail "$deb holds no onnxruntime_cxx_api.h"
rm -rf "$cache"
mkdir -p "$cache"
cp -a "$dir/." "$cache/"
log "unpacked $(basename "$deb") headers into $cache"
printf '%s\n' "$cache"
