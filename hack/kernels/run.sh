#!/usr/bin/env bash
# Usage: hack/kernels/run.sh [OPTIONS] KVER_OR_SERIES -- CMD [ARG...]
#
# Boots a Debian kernel (5.10, 6.1, 6.12 or a full version such as
# 6.1.0-37-amd64; hack/kernels/fetch.sh gets it once) under qemu and runs CMD
# in it as root, in the current directory, with the host's root filesystem
# shared read-only (so host binaries, tools and the repository are there),
# tmpfs /tmp (over the host's /tmp, still visible) and /run, and no network
# device. The guest's console goes to stdout; the exit code is CMD's.
#
#   hack/kernels/run.sh 6.1 -- ./pkg/capture.test -test.v -test.run TestEndToEnd
#
# Options:
#   --timeout D    kill the guest after D (timeout(1) syntax; default 10m)
#   --smp N        guest CPUs (default 1: under TCG here, with 2 every exec
#                  in the guest took 2-8 times longer, and the whole test
#                  list a quarter longer)
#   --mem M        guest memory (default 2G)
#   --env K=V      set K in CMD's environment (repeatable); CI, RINGTAP_*,
#                  and the host's GOPATH and GOMODCACHE are passed on
#   --ringtap BIN  a "go build -o OUT ." in cmd/ringtap (its TestMain) copies
#                  BIN instead of compiling under emulation
#   --log FILE     console to FILE instead of stdout
#   --share DIR    the read-write share (the guest's /run/ringtap); kept
#                  afterwards. Default: a temporary directory, removed.
#   --verbose      all kernel messages (default: quiet, warnings only)
#   --append ARGS  more kernel command line
#
# Exit code: CMD's; 125 when the guest failed before CMD could finish (boot
# failure, kernel panic, timeout): the reason is printed and, with --share,
# written to DIR/harness-error.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

timeout=10m smp=1 mem=2G log="" share="" verbose="" ringtap="" append=""
envs=()
if [ -n "${CI:-}" ]; then
  envs+=("CI=$CI")
fi
# The project's own settings (RINGTAP_MINIO, ...), not the matrix's.
while read -r v; do
  [[ $v == RINGTAP_KERNEL* ]] || envs+=("$v=${!v}")
done < <(compgen -e | grep '^RINGTAP_' || true)
# The host's Go paths: the guest's HOME is elsewhere, and tests find tools
# the host installed with go install (GOPATH/bin).
gobin=$(command -v go || echo /usr/local/go/bin/go)
if [ -x "$gobin" ]; then
  for v in GOPATH GOMODCACHE; do
    envs+=("$v=$("$gobin" env "$v")")
  done
fi
while (($#)); do
  case $1 in
  --timeout) timeout=$2; shift 2 ;;
  --smp) smp=$2; shift 2 ;;
  --mem) mem=$2; shift 2 ;;
  --env) envs+=("$2"); shift 2 ;;
  --ringtap) ringtap=$(realpath "$2"); shift 2 ;;
  --log) log=$2; shift 2 ;;
  --share) share=$2; shift 2 ;;
  --verbose) verbose=1; shift ;;
  --append) append=$2; shift 2 ;;
  --) break ;;
  -*) rt_die "unknown option $1 (see the top of $0)" ;;
  *) [ -z "${want:-}" ] || rt_die "one kernel only, then -- CMD"; want=$1; shift ;;
  esac
done
[ -n "${want:-}" ] && [ "${1:-}" = -- ] && (($# > 1)) ||
  rt_die "usage: hack/kernels/run.sh [OPTIONS] KVER_OR_SERIES -- CMD [ARG...]"
shift
[ -z "$ringtap" ] || [ -x "$ringtap" ] || rt_die "--ringtap $ringtap is not an executable"

rt_need qemu-system-x86_64 qemu-system-x86
kver=$("$RT_KERNELS_DIR/fetch.sh" "$want")
tree=$(rt_tree "$kver")
initrd=$("$RT_KERNELS_DIR/initramfs.sh" "$kver")

if [ -n "$share" ]; then
  mkdir -p "$share"
  rm -f "$share/job" "$share/exit-code" "$share/harness-error"
  keep=1
else
  share=$(mktemp -d /tmp/ringtap-guest.XXXXXX)
  keep=""
fi
qpid=""
cleanup() {
  if [ -n "$qpid" ]; then
    kill -TERM "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
  fi
  [ -n "$keep" ] || rm -rf "$share"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The job: CMD in the current directory, with the environment asked for.
{
  echo "cd $(printf %q "$PWD") || exit 125"
  for e in "${envs[@]}"; do
    [[ $e == *=* ]] || rt_die "--env $e: want K=V"
    echo "export $(printf %q "$e")"
  done
  [ -z "$ringtap" ] || echo "export RINGTAP_GUEST_RINGTAP=$(printf %q "$ringtap")"
  printf '%q ' "$@"
  echo
} >"$share/job"

cmdline="console=ttyS0 panic=-1 oops=panic rt.init=$RT_KERNELS_DIR/guest-init rt.tree=$tree"
[ -n "$verbose" ] || cmdline+=" quiet"
[ -z "$append" ] || cmdline+=" $append"
if [ -n "$log" ]; then
  mkdir -p "$(dirname "$log")"
  console=(-chardev "file,id=con,path=$log")
  console_log=$log
else
  console=(-chardev "stdio,id=con,signal=on,logfile=$share/console.log")
  console_log=$share/console.log
fi

# TCG: under KVM this host's guests hang in SeaBIOS. No NIC: nothing leaves
# the guest. multidevs=remap keeps inode numbers unique across the host's
# file systems (without it, mounting /proc in the guest fails).
timeout --kill-after=10s "$timeout" qemu-system-x86_64 \
  -nodefaults -no-user-config -machine q35 \
  -accel tcg,thread=multi -cpu max -smp "$smp" -m "$mem" \
  -display none -monitor none "${console[@]}" -serial chardev:con \
  -nic none -no-reboot \
  -kernel "$tree/boot/vmlinuz-$kver" -initrd "$initrd" -append "$cmdline" \
  -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=root,mount_tag=rootfs \
  -fsdev "local,id=share,path=$share,security_model=none,multidevs=remap" \
  -device virtio-9p-pci,fsdev=share,mount_tag=rtshare \
  -device virtio-rng-pci &
qpid=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=""

if [ -f "$share/exit-code" ]; then
  exit "$(<"$share/exit-code")"
fi
reason=$(grep -a -m1 -o 'ringtap-guest: FAIL: .*' "$console_log" 2>/dev/null | sed 's/^ringtap-guest: FAIL: //' || true)
panic=$(grep -a -m1 -o 'Kernel panic - .*' "$console_log" 2>/dev/null | tr -d '\r' || true)
if ((qrc == 124 || qrc == 137)); then
  reason="guest did not finish within $timeout${reason:+ ($reason)}"
elif [ -n "$panic" ]; then
  reason=$panic
elif [ -z "$reason" ]; then
  reason="guest stopped without an exit code (qemu exit $qrc)"
fi
echo "$reason" >"$share/harness-error"
rt_log "$kver: $reason (console: ${log:-above})"
exit 125
