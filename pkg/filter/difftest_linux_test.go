package filter_test

import (
	"errors"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// TestDifferentialCapture runs the expressions of the corpus on every frame with
// the real capture programs (XDP and TC) through BPF_PROG_RUN and compares
// each verdict with libpcap's pcap_offline_filter.
func TestDifferentialCapture(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	frames := filter.ReadFrames(t)
	exprs := filter.ReadExpressions(t)
	if len(frames) < 500 || len(exprs) < 300 {
		t.Fatalf("corpus too small: %d frames, %d expressions", len(frames), len(exprs))
	}
	for _, tc := range []struct {
		name  string
		hook  capture.Hook
		opts  filter.Options
		every int // test every n-th expression
	}{
		// A quarter of the corpus: TestDifferential (diff_test.go) runs
		// all of it in a harness, and a go test run of the package must
		// stay below ~1500 program loads.
		{"xdp", capture.HookXDP, filter.DefaultOptions, 4},
		{"tc", capture.HookTC, filter.DefaultOptions, 4},
		{"xdp-per-load-checks", capture.HookXDP, filter.Options{MergeChecks: false}, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A small snaplen, so the copy window comes from the
			// filter's own Need: a Need too small would show here.
			tester, err := capture.NewTester(tc.hook, 64, nil, capture.LinkTypeEthernet)
			if err != nil {
				t.Fatal(err)
			}
			defer tester.Close()
			pairs, bad := 0, 0
			refused := map[int]bool{}
			for i, expr := range exprs {
				if i%tc.every != 0 {
					continue
				}
				raw, err := filter.Compile(expr, capture.LinkTypeEthernet)
				if err != nil {
					t.Errorf("%q: %v", expr, err)
					continue
				}
				prog, err := filter.Translate(raw, tc.opts)
				if err != nil {
					t.Errorf("%q: %v", expr, err)
					continue
				}
				if err := tester.SetFilter(prog.CaptureFilter(), capture.LinkTypeEthernet); err != nil {
					t.Fatalf("%q: load: %v\n%s", expr, err, filter.Explain(prog))
				}
				ref, err := pcap.NewBPF(layers.LinkTypeEthernet, 262144, expr)
				if err != nil {
					t.Fatalf("%q: libpcap: %v", expr, err)
				}
				for fi, fr := range frames {
					want := ref.Matches(gopacket.CaptureInfo{CaptureLength: len(fr), Length: len(fr)}, fr)
					got, err := tester.Match(fr)
					if errors.Is(err, capture.ErrNotRunnable) {
						refused[fi] = true
						continue
					}
					if err != nil {
						t.Fatalf("%q frame %d: %v", expr, fi, err)
					}
					pairs++
					if got != want {
						bad++
						if bad <= 5 {
							t.Errorf("%q frame %d (%d bytes): ringtap %v, libpcap %v\nframe % x\n%s", expr, fi, len(fr), got, want, fr, filter.Explain(prog))
						}
					}
				}
			}
			t.Logf("%d expression × frame pairs, %d disagreements; %d frames the kernel refused to run", pairs, bad, len(refused))
			if len(refused) > len(frames)/2 {
				t.Errorf("the kernel refused %d of %d frames", len(refused), len(frames))
			}
			if bad > 0 {
				t.Fatalf("%d of %d verdicts differ from libpcap", bad, pairs)
			}
		})
	}
}
