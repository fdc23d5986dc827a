#!/usr/bin/env bash
# Usage: hack/kernels/initramfs.sh KVER
#
# Prints the path of a small initramfs for KVER (from the cache; built when
# its inputs changed): busybox-static, the modules that 9p over virtio needs
# (decompressed, loaded in dependency order; the ones built into KVER are
# left out), and an init that mounts the host's root read-only and
# switch_roots into it, handing over to hack/kernels/guest-init.sh (named on
# the kernel command line as rt.init=).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

(($# == 1)) || rt_die "usage: hack/kernels/initramfs.sh KVER"
kver=$1
tree=$(rt_tree "$kver")
[ -f "$tree/.complete" ] || rt_die "$kver is not in $RT_CACHE: run hack/kernels/fetch.sh $kver"
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || rt_die "busybox not found: install busybox-static (make deps installs it)"
# A dynamic busybox would need its libraries in the initramfs.
if ldd "$busybox" >/dev/null 2>&1; then
  rt_die "$busybox is dynamically linked: install busybox-static"
fi
rt_need modprobe kmod

# What mounting the host's root needs, in the order a reader expects; the
# dependencies come from modules.dep, so the list only names the leaves.
want=(virtio_pci 9pnet_virtio 9p)
# Optional: seeds the guest's RNG (5.10 can otherwise block getrandom for minutes).
optional=(virtio_rng)

# Resolve the load order on the host: "insmod PATH" for a module, "builtin
# NAME" for one compiled in, each module once.
order=()
declare -A seen=()
for m in "${want[@]}" "${optional[@]}"; do
  if ! deps=$(modprobe -d "$tree" -S "$kver" --show-depends "$m" 2>/dev/null); then
    [[ " ${optional[*]} " == *" $m "* ]] && continue
    rt_die "$kver has neither a module nor a built-in $m"
  fi
  while read -r kind path; do
    [ "$kind" = insmod ] || continue
    [ -n "${seen[$path]:-}" ] && continue
    seen[$path]=1
    order+=("$path")
  done <<<"$deps"
done

init=$RT_KERNELS_DIR/initramfs-init
key=$( {
  sha256sum "$init" "$busybox" | cut -d' ' -f1
  printf '%s\n' "$kver" "${order[@]}"
} | sha256sum | cut -c1-16)
out=$RT_CACHE/initramfs/$kver-$key.cpio.gz
if [ -f "$out" ]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,dev,proc,sys,newroot,modules}
cp "$busybox" "$work/bin/busybox"
ln -s busybox "$work/bin/sh"
cp "$init" "$work/init"
chmod 755 "$work/init"
: >"$work/modules/order"
for p in "${order[@]}"; do
  name=$(basename "$p")
  case $name in
  *.ko) cp "$p" "$work/modules/$name" ;;
  *.ko.xz) xz -dc "$p" >"$work/modules/${name%.xz}" ;;
  *.ko.zst) zstd -qdc "$p" >"$work/modules/${name%.zst}" ;;
  *.ko.gz) gzip -dc "$p" >"$work/modules/${name%.gz}" ;;
  *) rt_die "unknown module format: $p" ;;
  esac
  echo "${name%%.ko*}" >>"$work/modules/order"
done
mkdir -p "$RT_CACHE/initramfs"
rm -f "$RT_CACHE/initramfs/$kver"-*.cpio.gz
tmp=$(mktemp "$out.XXXXXX")
(cd "$work" && find . -mindepth 1 | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$tmp"
chmod 644 "$tmp"
mv "$tmp" "$out"
echo "$out"
