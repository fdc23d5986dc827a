# Shared by the kernel matrix scripts (sourced, not run). See README.md,
# "Kernel matrix".
#
# The cache (RINGTAP_KERNEL_CACHE, default /var/cache/ringtap-kernels):
#   apt/         private sources list, package lists and apt's own cache
#   debs/        downloaded linux-image-*-unsigned packages
#   trees/KVER/  an extracted package (boot/vmlinuz-KVER, lib/modules/KVER
#                with modules.dep), complete once trees/KVER/.complete exists
#   series/S     the kernel version that series S (e.g. 6.1) resolved to
#   initramfs/   one busybox initramfs per kernel version and init script

RT_KERNELS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RT_REPO=$(cd "$RT_KERNELS_DIR/../.." && pwd)
RT_CACHE=${RINGTAP_KERNEL_CACHE:-/var/cache/ringtap-kernels}

rt_die() {
  echo "kernels: $*" >&2
  exit 1
}

rt_log() {
  echo "kernels: $*" >&2
}

# rt_need CMD PACKAGE: fail with the package to install when CMD is missing.
rt_need() {
  command -v "$1" >/dev/null || rt_die "$1 not found: install $2 (make deps installs it)"
}

# rt_is_kver S: true for a full kernel version (6.1.0-37-amd64), false for a
# series (6.1).
rt_is_kver() {
  [[ $1 == *-amd64 ]]
}

# rt_tree KVER: the extracted package of KVER.
rt_tree() {
  echo "$RT_CACHE/trees/$1"
}

# rt_resolve_cached SERIES_OR_KVER: print the kernel version if its tree is in
# the cache, without touching the network; fail otherwise.
rt_resolve_cached() {
  local want=$1 kver
  if rt_is_kver "$want"; then
    kver=$want
  else
    [ -f "$RT_CACHE/series/$want" ] || return 1
    kver=$(<"$RT_CACHE/series/$want")
  fi
  [ -f "$(rt_tree "$kver")/.complete" ] || return 1
  echo "$kver"
}
