package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// busySample is the whole system's CPU time at one instant: wall time
// times online CPUs less their idle time. It counts what /proc/stat's
// user, system, irq and softirq count together (and steal), but to the
// microsecond: on this project's kernels CPU time is sampled by the tick
// (4 ms, no IRQ_TIME_ACCOUNTING), far too coarse for the few milliseconds
// a capture adds to a one-second run, while cpuidle's residency times are
// exact.
type busySample struct {
	wall time.Duration // CLOCK_MONOTONIC
	idle time.Duration // summed over CPUs
	cpus int
}

// busyNs is the CPU time spent between a and b, in nanoseconds.
func busyNs(a, b busySample) float64 {
	return float64((b.wall-a.wall)*time.Duration(a.cpus) - (b.idle - a.idle))
}

// sampleBusy reads every CPU's idle time from cpuidle. A CPU's idle
// period is added to its residency only when it ends, so each CPU's is
// read from a thread moved onto that CPU: the move wakes it, which ends
// (and accounts) the period it was in.
func sampleBusy() (busySample, error) {
	type res struct {
		s   busySample
		err error
	}
	ch := make(chan res, 1)
	go func() {
		// The thread's affinity is changed and not restored: it is
		// locked until the goroutine ends, and the runtime then
		// discards it.
		runtime.LockOSThread()
		var s busySample
		var cpus []int
		var all unix.CPUSet
		if err := unix.SchedGetaffinity(0, &all); err != nil {
			ch <- res{err: fmt.Errorf("cpu affinity: %w", err)}
			return
		}
		for c := range 1024 {
			if all.IsSet(c) {
				cpus = append(cpus, c)
			}
		}
		for _, c := range cpus {
			var one unix.CPUSet
			one.Set(c)
			if err := unix.SchedSetaffinity(0, &one); err != nil {
				ch <- res{err: fmt.Errorf("move to cpu %d: %w", c, err)}
				return
			}
			idle, err := cpuIdle(c)
			if err != nil {
				ch <- res{err: err}
				return
			}
			s.idle += idle
		}
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		s.wall = time.Duration(ts.Nano())
		s.cpus = len(cpus)
		ch <- res{s: s}
	}()
	r := <-ch
	return r.s, r.err
}

// cpuIdle sums the residency of cpu's idle states.
func cpuIdle(cpu int) (time.Duration, error) {
	states, err := filepath.Glob(fmt.Sprintf("/sys/devices/system/cpu/cpu%d/cpuidle/state*/time", cpu))
	if err != nil || len(states) == 0 {
		return 0, fmt.Errorf("cpu %d has no cpuidle states (CONFIG_CPU_IDLE): system CPU cannot be measured", cpu)
	}
	var us int64
	for _, p := range states {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		us += v
	}
	return time.Duration(us) * time.Microsecond, nil
}

// ProcessCPU is the CPU time pid's live threads have run, to the
// nanosecond (the first field of each thread's schedstat: its
// sum_exec_runtime, user and system together).
func ProcessCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no threads of pid %d (or no schedstat: CONFIG_SCHED_INFO)", pid)
	}
	var ns int64
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		ns += v
	}
	return time.Duration(ns), nil
}

// selfCPU is the CPU time of this process, exited threads included (the
// generator's thread runs the receive path's softirq: without
// IRQ_TIME_ACCOUNTING it is charged to the thread that raised it).
func selfCPU() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// softirqThreads are the pids of the ksoftirqd threads, which run the
// softirq work that process context left over.
func softirqThreads() ([]int, error) {
	comms, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range comms {
		b, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(string(b), "ksoftirqd/") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		return nil, errors.New("no ksoftirqd threads found")
	}
	return pids, nil
}

// cpuSample is the CPU time, at one instant, of everything a run is made
// of, and of the whole system.
type cpuSample struct {
	whole busySample
	// self (this process: the generator), softirqd (the ksoftirqd
	// threads) and procs (the capturing processes).
	self, softirqd, procs time.Duration
}

// attributed is the CPU time between a and b of the generator, ksoftirqd
// and the capturing processes: what the run cost, without the load other
// processes on the machine put on it.
func attributed(a, b cpuSample) float64 {
	return float64((b.self - a.self) + (b.softirqd - a.softirqd) + (b.procs - a.procs))
}

// sampleCPU takes a cpuSample; pids are the capturing processes.
func sampleCPU(softirqd, pids []int) (cpuSample, error) {
	var s cpuSample
	var err error
	if s.whole, err = sampleBusy(); err != nil {
		return s, err
	}
	if s.self, err = selfCPU(); err != nil {
		return s, err
	}
	for _, pid := range softirqd {
		c, err := ProcessCPU(pid)
		if err != nil {
			return s, err
		}
		s.softirqd += c
	}
	for _, pid := range pids {
		c, err := ProcessCPU(pid)
		if err != nil {
			return s, err
		}
		s.procs += c
	}
	return s, nil
}
