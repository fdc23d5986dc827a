#!/usr/bin/env bash
# Installs the Debian packages ringtap's build, tests and demo need, if any
# is missing. Idempotent; does nothing when everything is there.
set -euo pipefail
pkgs=(clang llvm libbpf-dev libpcap-dev tcpdump tshark iproute2 ethtool gcc make git qemu-system-x86 busybox-static kmod xz-utils postgresql chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "deps: Go is not on PATH (expected /usr/local/go/bin)"; exit 1; }
