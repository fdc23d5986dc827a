#!/usr/bin/env bash
# Usage: hack/kernels/matrix.sh [--report]   (make test-kernels)
#
# The kernel matrix: builds the privileged test binaries and bin/ringtap once
# on the host, then runs them, the capture demo and, where asked, a refusal
# check on every kernel of the table below: Debian's kernels under qemu
# (hack/kernels/run.sh), the host's own kernel directly. One line per kernel
# (PASS or FAIL with the failing tests), then a table; the full console log
# of each kernel is bin/kernels/KVER.log, its raw results bin/kernels/KVER/.
# Exits non-zero when any kernel of the table failed; every kernel runs to
# the end first. --report only judges the results of the last run again.
#
# Environment:
#   RINGTAP_KERNELS              only these rows, e.g. "6.1" or "host 6.12"
#   RINGTAP_KERNEL_JOBS          guests at once (default 2: one vCPU each on
#                                this 2-core host; 3 was no faster overall)
#   RINGTAP_KERNEL_TIMEOUT       seconds per guest, boot to power-off (default 960;
#                                6.1, the slowest, took 799-855 s in CI)
#   RINGTAP_KERNEL_DEADLINE      seconds for the whole matrix (default 1200, under
#                                .ci/run's 21 min): a guest gets at most what is
#                                left, so the summary is always printed (at 1140
#                                the slot 5.10 + 6.12 ran out once: 312 s + 702 s
#                                after the host's 78 s, with 6.12 not done)
#   RINGTAP_KERNEL_TEST_TIMEOUT  per test binary, -test.timeout (default 6m)
#   RINGTAP_KERNEL_CACHE         kernels and initramfs (default /var/cache/ringtap-kernels)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
report_only=""
case ${1:-} in
--report) report_only=1 ;;
"") ;;
*) rt_die "usage: hack/kernels/matrix.sh [--report]" ;;
esac

# The matrix, the one place to edit: one row per kernel.
#   SERIES  a Debian kernel series (fetch.sh takes its newest package from
#           bullseye, bookworm or bookworm-backports), or "host": the running
#           kernel, tested directly on the host
#   TESTS   "full": every step of the list below; "tc": the TC-only list
#           below (kernels without XDP support); "none": no test binaries
#           and no demo (a kernel ringtap only has to refuse)
#   REFUSE  "-", or an extended regex: `ringtap capture -i lo --hook xdp -c 1`
#           must exit non-zero with stderr matching it (what the kernel lacks)
#
# Guests start in this order, two at a time: the slowest first.
matrix=(
  "host full -"
  "6.1  full -"
  # 5.10 has BPF ring buffers (5.8) but not bpf_xdp_load_bytes (5.18):
  # ringtap captures at TC there, and refuses --hook xdp in one sentence.
  "5.10 tc   kernel 5\.10.* lacks bpf_xdp_load_bytes \(5\.18\), which the XDP hook needs; use --hook tc"
  "6.12 full -"
)

# The test list "full": every package whose tests load BPF programs, make
# veth pairs or namespaces, or run ringtap. RUN and SKIP are -test.run and
# -test.skip regexes ("-": none); a test added to a package runs here unless
# SKIP names it.
#
# Why SKIP names what it names: under emulation (TCG, no KVM on this host)
# a kernel runs the list 10-40 times slower than the host, and the matrix has
# to fit in about 15 minutes of CI on 2 cores. Every test that checks the
# kernel runs: XDP and TC capture end to end (TestEndToEnd, clsact below
# 6.6), the filter differential tests, filters spliced into the real
# programs, `filter test --hook tc`, the stop/detach tests, the demo. Left
# out, with their time in a 6.1 guest:
#   TestFilterTestOddRecords (195 s; 10 s a case, mostly starting tshark
#     twice): the cases whose records the kernel handles differently run
#     (truncated records, over 64 KiB, shorter than a header: len > 100,
#     len >= 80000, ether[70000] = 0, ether[5] = 0, at both hooks); the plain
#     expressions (less, greater, udp, not tcp, udp port 53, ip[2:2]) only
#     repeat what the differential tests check, and run on the host.
#   TestCorpusTshark, TestCorpusDeterministic (10 s): frame building and
#     tshark, no kernel involved.
#   TestAgentChurn, TestAgentComponentRestart, TestAgentBadConfig and
#     TestConsoleEndToEnd (which builds ringtap-console) skip
#     themselves here (RINGTAP_KERNEL_MATRIX, set by guest-tests): the
#     first re-verifies hundreds of programs (minutes under TCG) and the
#     pkg/capture engine tests check its kernel side; the others check no
#     kernel feature. TestEngineSharedTC/clsact skips where the kernel has
#     no TCX (the default run used clsact already).
#   TestBusyHead (ringbuf): the reader's backoff on a busy record, judged
#     by the thread's CPU time over 300 ms, which TCG distorts; no kernel
#     involved (the record is a copy).
#   TestStopDrainsRing's XDP cases (25-50 s under TCG): the TC case runs
#     (clsact below 6.6), with the same drain; TestGenericXDPStopUnderFlood
#     stops an XDP capture under load on every kernel.
#   TestFenceWaitsForBusyRecord skips itself on one CPU (guests have one).
#   cmd/ringtap's tests of what happens after the capture, 114 s in a 6.1
#     guest, so that the matrix fits with room to spare (it had reached
#     1,111 s of its 1,200): TestFilterTestAgreesWithTcpdump (43 s, tshark
#     and tcpdump starting under TCG; the same kernel path is
#     TestDifferentialCapture's and TestFilterTestOddRecords'), the S3
#     export (TestCaptureUploadsToS3, TestCaptureS3BadInput: MinIO),
#     TestSIGKILLThenRecover (the storage's recovery of a torn file; that a
#     SIGKILL leaves nothing attached is TestSIGKILLLeavesNothingAttached's,
#     which runs), TestStorageUsageErrors (flag checks before anything
#     attaches) and TestCaptureToStdoutPipesIntoTshark (the pcap stream).
#   (A -test.skip of whole tests and of subtests is an alternation at the
#   top level: Go splits it at unbracketed "|" before "/".)
tests=(
  "ringbuf        -  ^TestBusyHead$"
  "pkg/testbed    -  -"
  "pkg/caps       -  -"
  "pkg/trafficgen -  ^(TestCorpusTshark|TestCorpusDeterministic)$"
  "pkg/filter     -  -"
  "pkg/capture    -  ^TestStopDrainsRing$/^(close-during-run-xdp|interface-deleted-xdp)$"
  "pkg/pcapmgr    ^TestJob  -"
  "cmd/ringtap    -  ^(TestFilterTestAgreesWithTcpdump|TestCaptureUploadsToS3|TestCaptureS3BadInput|TestSIGKILLThenRecover|TestStorageUsageErrors|TestCaptureToStdoutPipesIntoTshark)$|^TestFilterTestOddRecords$/./^(less_200|greater_1000|udp|not_tcp|udp_port_53|ip\[2:2\]_>_1000)$"
)

# The test list "tc", for kernels with TC capture and no XDP support
# (5.8 to 5.17: Debian 11's 5.10, Ubuntu 22.04's 5.15, RHEL 9's 5.14). The
# tests that use the XDP hook, the XDP harness or live frames (XDP test
# runs) would only show that XDP is missing, which the refusal step checks;
# so these name the TC cases: capture end to end at TC (clsact), monitor
# port and loopback at TC, the kernel probing and the verifier error, the
# differential test through the real TC program, filter test --hook tc,
# many captures sharing the TC programs (clsact replace) with TestEngineSharedTC,
# and capture jobs (TestJob*: always TC, beside a standing capture).
# No demo: its fast burst is sent with XDP live frames.
tc_tests=(
  "ringbuf        -  ^TestBusyHead$"
  "pkg/capture    ^(TestEndToEnd|TestMonitorPortDrops|TestLoopbackInOutOnce|TestRequireKernel|TestVerifierRejectionIsNotPermission|TestOpenErrors|TestEngineSharedTC|TestVerifierWorkPerFilter)$/^(tc.*|.*5\.10.*|no_ringbuf|unknown_interface|snaplen|ring_.*|wakeup_never|twice|monitor_out|default|clsact)$  -"
  "pkg/filter     ^TestDifferentialCapture$/^tc$  -"
  "pkg/pcapmgr    ^TestJob  -"
  "cmd/ringtap    ^(TestFilterTestOddRecords|TestFilterTestTooLargeForTC)$/^tc  ^TestFilterTestOddRecords$/./^(less_200|greater_1000|udp|not_tcp|udp_port_53|ip\[2:2\]_>_1000)$"
)

max_jobs=${RINGTAP_KERNEL_JOBS:-2}
guest_timeout=${RINGTAP_KERNEL_TIMEOUT:-960}
deadline=${RINGTAP_KERNEL_DEADLINE:-1200}
test_timeout=${RINGTAP_KERNEL_TEST_TIMEOUT:-6m}
out=$RT_REPO/bin/kernels
export PATH=/usr/local/go/bin:$PATH

rows=()
for row in "${matrix[@]}"; do
  read -r series _ <<<"$row"
  if [ -n "${RINGTAP_KERNELS:-}" ] && [[ " $RINGTAP_KERNELS " != *" $series "* ]]; then
    continue
  fi
  rows+=("$row")
done
((${#rows[@]})) || rt_die "RINGTAP_KERNELS=$RINGTAP_KERNELS names no row of the matrix in $0"

now() { date +%s; }
t0=$(now)

# One run at a time writes bin/kernels/ (a second would delete the first's
# results under it).
if [ -z "$report_only" ]; then
  mkdir -p "$out"
  exec 8>"$out/.lock"
  flock -n 8 || rt_die "another matrix run is using $out (wait for it, or run from another checkout)"
fi

# Build once, on the host. make test has filled Go's build cache, so this
# only links.
build_s=0
if [ -z "$report_only" ]; then
  rt_need go "Go (/usr/local/go/bin)"
  mkdir -p "$out/tests"
  rt_log "building the test binaries and bin/ringtap"
  tb=$(now)
  (
    cd "$RT_REPO"
    for t in "${tests[@]}"; do
      read -r pkg _ <<<"$t"
      go test -c -o "$out/tests/${pkg//\//_}.test" "./$pkg"
    done
    go build -o bin/ringtap ./cmd/ringtap
  ) || rt_die "build failed"
  build_s=$(($(now) - tb))
fi

# Fetch every kernel first, in one go (a cached run does not touch the
# network).
declare -A kver_of=()
series_list=()
for row in "${rows[@]}"; do
  read -r series _ <<<"$row"
  [ "$series" = host ] || series_list+=("$series")
done
kvers=()
if ((${#series_list[@]})); then
  if [ -n "$report_only" ]; then
    for series in "${series_list[@]}"; do
      kvers+=("$(rt_resolve_cached "$series")") || rt_die "$series is not in $RT_CACHE: nothing to report"
    done
  else
    mapfile -t kvers < <("$RT_KERNELS_DIR/fetch.sh" "${series_list[@]}")
    ((${#kvers[@]} == ${#series_list[@]})) || rt_die "fetching the kernels failed"
    for k in "${kvers[@]}"; do
      "$RT_KERNELS_DIR/initramfs.sh" "$k" >/dev/null
    done
  fi
fi
kver_of[host]=$(uname -r)
for i in "${!series_list[@]}"; do
  kver_of[${series_list[$i]}]=${kvers[$i]}
done

# plan SERIES TESTS REFUSE RESULTS: the steps guest-tests runs for a row.
plan() {
  local tests_kind=$2 refuse=$3 res=$4 pkg run skip
  {
    if [ "$refuse" != - ]; then
      echo "refuse $RT_REPO/bin/ringtap $refuse"
    fi
    if [ "$tests_kind" = full ]; then
      for t in "${tests[@]}"; do
        read -r pkg run skip <<<"$t"
        echo "test $pkg $RT_REPO/$pkg $out/tests/${pkg//\//_}.test $test_timeout $run $skip"
      done
      echo "smoke $RT_REPO/bin/ringtap"
    elif [ "$tests_kind" = tc ]; then
      for t in "${tc_tests[@]}"; do
        read -r pkg run skip <<<"$t"
        echo "test $pkg $RT_REPO/$pkg $out/tests/${pkg//\//_}.test $test_timeout $run $skip"
      done
    elif [ "$tests_kind" != none ]; then
      rt_die "matrix row $1: TESTS is full, tc or none, not $tests_kind"
    fi
  } >"$res/plan"
}

pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

declare -A secs_of=()
start_row() {
  local series=$1 tests_kind=$2 refuse=$3 kver res
  kver=${kver_of[$series]}
  res=$out/$kver
  rm -rf "$res" "$out/$kver.log"
  mkdir -p "$res"
  plan "$series" "$tests_kind" "$refuse" "$res"
  date +%s >"$res/started"
  if [ "$series" = host ]; then
    rt_log "$kver (host): running the tests directly, log bin/kernels/$kver.log"
    "$RT_KERNELS_DIR/guest-tests" "$res" "$res/plan" >"$out/$kver.log" 2>&1 || true
    date +%s >"$res/finished"
  else
    local left=$((deadline - ($(now) - t0) - 30)) limit=$guest_timeout
    ((left >= limit)) || limit=$left
    if ((limit < 60)); then
      echo "not started: the matrix's deadline (${deadline} s) came first" >"$res/harness-error"
      date +%s >"$res/finished"
      return
    fi
    rt_log "$kver: booting, log bin/kernels/$kver.log"
    (
      "$RT_KERNELS_DIR/run.sh" --smp 1 --mem 2G --timeout "${limit}s" --verbose \
        --share "$res" --log "$out/$kver.log" --ringtap "$RT_REPO/bin/ringtap" \
        "$kver" -- "$RT_KERNELS_DIR/guest-tests" /run/ringtap /run/ringtap/plan \
        >/dev/null 2>"$res/run.stderr" &
      rpid=$!
      # Stopping the matrix stops this guest (run.sh stops its qemu).
      trap 'kill -TERM $rpid 2>/dev/null; wait $rpid; exit 143' TERM INT
      wait $rpid || true
      date +%s >"$res/finished"
    ) &
    pids+=($!)
  fi
}

if [ -z "$report_only" ]; then
  # The host's row first, alone (it is quick, and a loaded host would make
  # its timing tests flaky); then the guests, $max_jobs at a time.
  for row in "${rows[@]}"; do
    read -r series tests_kind refuse <<<"$row"
    if [ "$series" = host ]; then
      start_row "$series" "$tests_kind" "$refuse"
    fi
  done
  for row in "${rows[@]}"; do
    read -r series tests_kind refuse <<<"$row"
    [ "$series" != host ] || continue
    while (($(jobs -rp | wc -l) >= max_jobs)); do
      wait -n || true
    done
    start_row "$series" "$tests_kind" "$refuse"
  done
  wait || true
  pids=()
fi

# first_message OUT TEST: the first "file.go:N: ..." line TEST logged.
first_message() {
  awk -v t="$2" '
    /^=== (RUN|NAME|CONT|PAUSE) / { cur = $3; next }
    /^(---|\s+---) / { next }
    cur == t && /^ +[^ ]+\.go:[0-9]+: / { sub(/^ +/, ""); print; exit }
  ' "$1"
}

# failed_leaves OUT: the failing tests that have no failing subtest.
failed_leaves() {
  grep -oE -- '--- FAIL: [^ ]+' "$1" | awk '{print $3}' | awk '
    { name[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) {
        leaf = 1
        for (j = 1; j <= NR; j++) if (index(name[j], name[i] "/") == 1) leaf = 0
        if (leaf && !seen[name[i]]++) print name[i]
      }
    }'
}

# first3 LINES: the first three lines, comma-separated, "..." for more.
first3() {
  local n=0 l out=""
  while read -r l; do
    n=$((n + 1))
    if ((n <= 3)); then
      out+="${out:+, }$l"
    fi
  done <<<"$1"
  ((n <= 3)) || out+=", ..."
  echo "$out"
}

# Judge each row from the files in its results directory.
declare -A verdict=() cell=()
failures=()
any_failed=""
steps=()
for t in "${tests[@]}"; do
  read -r pkg _ <<<"$t"
  steps+=("$pkg")
done
steps+=(demo refusal)
for row in "${rows[@]}"; do
  read -r series tests_kind refuse <<<"$row"
  kver=${kver_of[$series]}
  res=$out/$kver
  log=bin/kernels/$kver.log
  passed=() failed=()
  secs=$(($(cat "$res/finished" 2>/dev/null || now) - $(<"$res/started")))
  harness=""
  [ ! -f "$res/harness-error" ] || harness=$(<"$res/harness-error")
  while read -r kind rest; do
    case $kind in
    test) read -r pkg _ <<<"$rest"; id=${pkg//\//_}; step=$pkg ;;
    smoke) id=smoke; step=demo ;;
    refuse) id=refuse; step=refusal ;;
    esac
    if [ ! -f "$res/$id.rc" ]; then
      cell[$kver,$step]="not run"
      failed+=("$step: did not run")
      continue
    fi
    rc=$(<"$res/$id.rc") time=$(<"$res/$id.time")
    n=$(grep -c -- '--- PASS:' "$res/$id.out" || true)
    case $kind in
    test)
      if ((rc == 0)); then
        cell[$kver,$step]="ok $n ${time}s"
        passed+=("$pkg $n passed")
      else
        leaves=$(failed_leaves "$res/$id.out")
        nf=$(grep -c -- '--- FAIL:' "$res/$id.out" || true)
        cell[$kver,$step]="FAIL $n/$((n + nf)) ${time}s"
        if [ -n "$leaves" ]; then
          failed+=("$pkg: $(first3 "$leaves")")
          # The first three, with what each logged first; a count for the rest.
          while read -r leaf; do
            failures+=("$kver $pkg $leaf: $(first_message "$res/$id.out" "$leaf" | cut -c1-400)")
          done < <(echo "$leaves" | head -3)
          nl=$(echo "$leaves" | wc -l)
          ((nl <= 3)) || failures+=("$kver $pkg: $((nl - 3)) more failing tests, see $log")
        else
          why=$(grep -m1 -E '^(panic: |fatal error: |FAIL|.*test timed out)' "$res/$id.out" || echo "exit $rc")
          failed+=("$pkg: exit $rc, $why")
          failures+=("$kver $pkg: exit $rc: $(grep -m1 -B2 -E '^(panic: |fatal error: )' "$res/$id.out" | paste -sd' ' | cut -c1-400 || true)")
        fi
      fi
      ;;
    smoke)
      pk=$(awk -F': *' '/^Number of packets/ {print $2}' "$res/smoke.out")
      if ((rc == 0)); then
        cell[$kver,$step]="ok ${pk:-?}pk ${time}s"
        passed+=("demo ${pk:-?} packets")
      else
        cell[$kver,$step]="FAIL ${time}s"
        failed+=("demo: exit $rc")
        failures+=("$kver demo: $(grep -v '^ringtap-guest' "$res/smoke.out" | grep . | tail -1 | cut -c1-400)")
      fi
      ;;
    refuse)
      if ((rc == 0)); then
        cell[$kver,$step]="ok ${time}s"
        passed+=("refused as expected")
      else
        cell[$kver,$step]="FAIL ${time}s"
        if grep -q '^(still running' "$res/refuse.out"; then
          failed+=("refusal: ringtap capture -i lo --hook xdp started capturing instead of refusing")
        else
          failed+=("refusal: ringtap capture -i lo --hook xdp $(tail -1 "$res/refuse.out"), stderr not matching the row's REFUSE")
        fi
        failures+=("$kver refusal: expected exit != 0 and stderr =~ /$refuse/, got: $(head -c 400 "$res/refuse.out" | paste -sd' ')")
      fi
      ;;
    esac
  done <"$res/plan"
  if [ -n "$harness" ]; then
    failed=("guest: $harness" "${failed[@]}")
    failures+=("$kver guest: $harness")
  fi
  secs_of[$kver]=$secs
  name=$kver
  [ "$series" != host ] || name="$kver (host)"
  if ((${#failed[@]})); then
    verdict[$kver]=FAIL
    any_failed=1
    echo "kernel $name: FAIL ($(printf '%s; ' "${failed[@]}")see $log)"
  else
    verdict[$kver]=PASS
    echo "kernel $name: PASS ($(printf '%s, ' "${passed[@]}")$secs s)"
  fi
done

# The table: one column per kernel, one row per step.
echo
printf '%-16s' "step"
for row in "${rows[@]}"; do read -r series _ <<<"$row"; printf ' %-22s' "${kver_of[$series]}"; done
echo
for step in "${steps[@]}"; do
  line=$(printf '%-16s' "$step")
  shown=""
  for row in "${rows[@]}"; do
    read -r series _ <<<"$row"
    c=${cell[${kver_of[$series]},$step]:--}
    [ "$c" = - ] || shown=1
    line+=$(printf ' %-22s' "$c")
  done
  [ -z "$shown" ] || echo "$line"
done
line=$(printf '%-16s' "result")
for row in "${rows[@]}"; do
  read -r series _ <<<"$row"
  k=${kver_of[$series]}
  line+=$(printf ' %-22s' "${verdict[$k]} ${secs_of[$k]}s")
done
echo "$line"
echo "(ok N Ts: N tests and subtests passed in T seconds; build ${build_s}s; whole matrix $(($(now) - t0))s)"

if ((${#failures[@]})); then
  echo
  echo "first failure messages:"
  printf '  %s\n' "${failures[@]}"
fi
[ -z "$any_failed" ]
