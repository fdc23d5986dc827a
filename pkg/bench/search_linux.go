package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// MaxRate is a tool's highest zero-loss rate found by bisection.
type MaxRate struct {
	Scenario string   `json:"scenario"`
	Tool     string   `json:"tool"`
	PPS      uint64   `json:"zero_loss_pps"`
	TopPPS   float64  `json:"generator_top_pps"`
	Runs     []Result `json:"runs"`
}

// FindMax bisects, for each tool, the highest generator rate at which every
// offered frame reached the file. It first runs at the top rate; if that
// loses nothing, the top rate is the answer.
func (r *Runner) FindMax(ctx context.Context, sc Scenario, steps int) ([]MaxRate, error) {
	var out []MaxRate
	for _, tool := range r.cfg.Tools {
		m := MaxRate{Scenario: sc.Name, Tool: tool}
		top, err := r.Once(ctx, sc, tool, 0, 0, r.cfg.Packets)
		if err != nil {
			return out, err
		}
		m.Runs = append(m.Runs, top)
		m.TopPPS = top.GenPPS
		if top.Captured >= top.Offered {
			m.PPS = uint64(top.GenPPS)
			out = append(out, m)
			continue
		}
		lo, hi := uint64(0), uint64(top.GenPPS)
		for i := 0; i < steps && hi-lo > hi/50; i++ {
			mid := (lo + hi) / 2
			res, err := r.Once(ctx, sc, tool, i+1, mid, r.cfg.Packets)
			if err != nil {
				return out, err
			}
			m.Runs = append(m.Runs, res)
			r.cfg.Log.Info("bisect", "scenario", sc.Name, "tool", tool, "rate", mid, "offered", res.Offered, "captured", res.Captured)
			// A paced generator may fall short of the asked rate; judge by
			// what it achieved.
			if res.Captured >= res.Offered {
				lo = uint64(res.GenPPS)
			} else {
				hi = mid
			}
		}
		m.PPS = lo
		out = append(out, m)
	}
	return out, nil
}

// Soak runs ringtap alone at rate for d, sampling its RSS every interval.
func (r *Runner) Soak(ctx context.Context, sc Scenario, rate uint64, d, interval time.Duration) (Result, error) {
	return r.once(ctx, sc, "ringtap", 0, rate, uint64(float64(rate)*d.Seconds()), interval)
}

// rssMiB reads VmRSS of pid.
func rssMiB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// sampleRSS records pid's RSS every interval until stop closes.
func sampleRSS(pid int, interval time.Duration, stop <-chan struct{}) <-chan []float64 {
	out := make(chan []float64, 1)
	go func() {
		var s []float64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				out <- s
				return
			case <-t.C:
				if v, err := rssMiB(pid); err == nil {
					s = append(s, v)
				}
			}
		}
	}()
	return out
}
