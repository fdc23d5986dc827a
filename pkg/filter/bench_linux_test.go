package filter_test

import (
	"testing"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// benchExprs are representative filters.
var benchExprs = []string{
	"udp",
	"tcp port 443",
	"host 198.18.0.1",
	"net 198.18.0.0/15 and not port 22",
	"vlan 100 and udp",
	"ip6 and tcp",
	"tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
	"tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
	"portrange 1000-2000",
	"icmp",
	"ether broadcast",
	"ip[6:2] & 0x1fff != 0",
}

// BenchmarkCaptureFilter times the whole XDP capture program (copy, filter, ring
// output) per 64-byte UDP frame with BPF_PROG_RUN, for each expression with
// merged bounds checks and with one check per load, next to the program
// with no filter ("accept-all") and with `ret #0` ("reject-all"). The
// difference to those is the filter's own cost. Metrics: ns/pkt (kernel
// measured), insns (eBPF instructions of the filter), checks.
func BenchmarkCaptureFilter(b *testing.B) {
	testbedtest.RequirePrivileged(b)
	frame := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcPort: 1500, DstPort: 443, Size: 64}))
	tester, err := capture.NewTester(capture.HookXDP, 128, nil, capture.LinkTypeEthernet)
	if err != nil {
		b.Fatal(err)
	}
	defer tester.Close()
	run := func(b *testing.B, f *capture.Filter, p *filter.Program) {
		if err := tester.SetFilter(f, capture.LinkTypeEthernet); err != nil {
			b.Fatal(err)
		}
		const repeat = 100000
		var total float64
		for b.Loop() {
			d, err := tester.Time(frame, repeat)
			if err != nil {
				b.Fatal(err)
			}
			total += float64(d.Nanoseconds())
		}
		b.ReportMetric(total/float64(b.N), "ns/pkt")
		if p != nil {
			b.ReportMetric(float64(len(p.Insns)), "insns")
			b.ReportMetric(float64(p.Checks), "checks")
		}
	}
	b.Run("accept-all", func(b *testing.B) { run(b, nil, nil) })
	reject, err := filter.ParseRaw("1\n6 0 0 0")
	if err != nil {
		b.Fatal(err)
	}
	rp, err := filter.Translate(reject, filter.DefaultOptions)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("reject-all", func(b *testing.B) { run(b, rp.CaptureFilter(), rp) })
	for _, expr := range benchExprs {
		raw, err := filter.Compile(expr, capture.LinkTypeEthernet)
		if err != nil {
			b.Fatal(err)
		}
		for _, v := range []struct {
			name string
			opts filter.Options
		}{{"merged", filter.DefaultOptions}, {"per-load", filter.Options{}}} {
			p, err := filter.Translate(raw, v.opts)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(expr+"/"+v.name, func(b *testing.B) { run(b, p.CaptureFilter(), p) })
		}
	}
}
