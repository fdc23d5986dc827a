package filter_test

import (
	"bufio"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

var update = flag.Bool("update", false, "rewrite testdata/filter/frames.pcap")

const framesPath = "../../testdata/filter/frames.pcap"

// corpusFrames is the packet corpus: the traffic generator's frames, every
// one also cut short at header boundaries (so loads run off the end), IPv4
// headers with bad lengths, and random bytes.
func corpusFrames() [][]byte {
	var out [][]byte
	for _, f := range trafficgen.Corpus() {
		out = append(out, f.Data)
	}
	n := len(out)
	for i, f := range out[:n] {
		for _, cut := range []int{14, 15, 18, 20, 23, 26, 30, 34, 38, 42, 54, 58} {
			if cut < len(f) && (i+cut)%5 == 0 {
				out = append(out, f[:cut])
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 60 {
		f := append([]byte{}, out[rng.IntN(n)]...)
		switch i % 4 {
		case 0: // IHL below 5
			if len(f) > 14 {
				f[14] = 0x40 | byte(rng.IntN(5))
			}
		case 1: // IHL 15: options run past the frame
			if len(f) > 14 {
				f[14] = 0x4f
			}
		case 2: // random byte flips
			for range 4 {
				f[rng.IntN(len(f))] = byte(rng.UintN(256))
			}
		case 3: // random bytes with a plausible ethertype
			for j := 14; j < len(f); j++ {
				f[j] = byte(rng.UintN(256))
			}
		}
		out = append(out, f)
	}
	for range 40 {
		f := make([]byte, 14+rng.IntN(200))
		for j := range f {
			f[j] = byte(rng.UintN(256))
		}
		out = append(out, f)
	}
	return out
}

func mustFrames(t *testing.T) [][]byte {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(framesPath), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(framesPath)
		if err != nil {
			t.Fatal(err)
		}
		w, err := pcapio.NewWriter(f, pcapio.WriterOptions{Format: pcapio.FormatPCAP, Interfaces: []pcapio.Interface{{LinkType: 1, SnapLen: 65535}}})
		if err != nil {
			t.Fatal(err)
		}
		ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
		for i, fr := range corpusFrames() {
			if err := w.WritePacket(&pcapio.Packet{Timestamp: ts + int64(i)*1000, WireLen: uint32(len(fr)), Data: fr}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(framesPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	defer f.Close()
	r, err := pcapio.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	var p pcapio.Packet
	for {
		err := r.Next(&p)
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, append([]byte{}, p.Data...))
	}
}

func mustExpressions(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../testdata/filter/expressions.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestDifferential runs every expression of the corpus on every frame with
// the real capture programs (XDP and TC) through BPF_PROG_RUN and compares
// each verdict with libpcap's pcap_offline_filter.
func TestDifferential(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	frames := mustFrames(t)
	exprs := mustExpressions(t)
	if len(frames) < 500 || len(exprs) < 300 {
		t.Fatalf("corpus too small: %d frames, %d expressions", len(frames), len(exprs))
	}
	for _, tc := range []struct {
		name  string
		hook  capture.Hook
		opts  filter.Options
		every int // test every n-th expression
	}{
		{"xdp", capture.HookXDP, filter.DefaultOptions, 1},
		{"tc", capture.HookTC, filter.DefaultOptions, 1},
		{"xdp-per-load-checks", capture.HookXDP, filter.Options{MergeChecks: false}, 6},
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
