package filter

import (
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// benchCases are representative filters, each with a 64-byte (or the
// shortest possible) frame that it accepts.
var benchCases = []struct {
	name, expr string
	frame      []byte
}{
	{"udp", "udp", eth(macB, macA, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 17, udp(53, 53, nil), v4opts{}))},
	{"tcp-port-443", "tcp port 443", eth(macB, macA, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 6, tcp(40000, 443, 0x10, nil, nil), v4opts{}))},
	{"host", "host 198.18.0.1", eth(macB, macA, 0x0800, ipv4("198.19.0.1", "198.18.0.1", 17, udp(1, 2, nil), v4opts{}))},
	{"net-not-port", "net 198.18.0.0/15 and not port 22", eth(macB, macA, 0x0800, ipv4("198.19.0.1", "10.0.0.1", 6, tcp(40000, 443, 0x10, nil, nil), v4opts{}))},
	{"vlan-udp", "vlan 100 and udp", tagged(macB, macA, [][2]uint16{{0x8100, 100}}, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 17, udp(53, 53, nil), v4opts{}))},
	{"ip6-tcp", "ip6 and tcp", eth(macB, macA, 0x86dd, ipv6("2001:db8::1", "2001:db8::2", 6, tcp(40000, 443, 0x10, nil, nil)))},
	{"tcp-payload", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", eth(macB, macA, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 6, tcp(40000, 80, 0x18, nil, []byte("GET ")), v4opts{}))},
	{"tcpflags", "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0", eth(macB, macA, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 6, tcp(40000, 443, 0x02, nil, nil), v4opts{}))},
	{"portrange", "portrange 1000-2000", eth(macB, macA, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 17, udp(1500, 53, nil), v4opts{}))},
	{"icmp", "icmp", eth(macB, macA, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 1, icmp(8, 0, nil), v4opts{}))},
	{"ether-broadcast", "ether broadcast", eth(macBcast, macA, 0x0806, arp(1, macA, "198.18.0.1", make([]byte, 6), "198.18.0.2"))},
	{"ip-fragment", "ip[6:2] & 0x1fff != 0", eth(macB, macA, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 17, udp(53, 53, nil), v4opts{flagsOff: 185}))},
}

// BenchmarkFilter times each filter in the XDP harness with
// BPF_PROG_RUN (repeat 10000) on its frame, with merged checks and with
// one per load. ns/pkt is the whole harness per frame (map lookup, copy,
// one call). The filter's own cost is a few nanoseconds, below the noise
// of that, so filter-ns/pkt comes from harnesses that call the function
// benchCalls times per frame: (time - time with the accept-all stub) /
// benchCalls.
func BenchmarkFilter(b *testing.B) {
	const repeat, benchCalls = 10000, 16
	h := newHarness(b)
	load := func(p *Program, calls int) *ebpf.Program {
		b.Helper()
		spec := h.specCalls(hookXDP, DefaultWindow, calls)
		if p != nil {
			if err := p.Splice(spec, stubSymbol); err != nil {
				b.Fatal(err)
			}
		}
		prog, err := ebpf.NewProgram(spec)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { prog.Close() })
		return prog
	}
	base, baseN := load(nil, 1), load(nil, benchCalls)
	perPacket := func(prog *ebpf.Program, frame []byte) time.Duration {
		b.Helper()
		_, d, err := prog.Benchmark(frame, repeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	b.Run("accept-all-stub", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			total += perPacket(base, benchCases[0].frame)
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/pkt")
	})
	for _, bc := range benchCases {
		frame := padTo(append([]byte(nil), bc.frame...), 64)
		raw := mustCompile(b, bc.expr)
		if !newReference(b, raw).matches(frame) {
			b.Fatalf("%q does not match its frame", bc.expr)
		}
		for _, opts := range []Options{DefaultOptions, {}} {
			mode := "merged"
			if !opts.MergeChecks {
				mode = "per-load"
			}
			b.Run(fmt.Sprintf("%s/%s", bc.name, mode), func(b *testing.B) {
				p := mustTranslate(b, raw, opts)
				prog, progN := load(p, 1), load(p, benchCalls)
				for _, pr := range []*ebpf.Program{prog, progN} {
					if ok, err := run(pr, hookXDP, frame); err != nil || !ok {
						b.Fatalf("the translated filter rejects its frame (%v)", err)
					}
				}
				var total, many, stubMany time.Duration
				for b.Loop() {
					total += perPacket(prog, frame)
					many += perPacket(progN, frame)
					stubMany += perPacket(baseN, frame)
				}
				n := float64(b.N)
				b.ReportMetric(float64(total.Nanoseconds())/n, "ns/pkt")
				b.ReportMetric(float64((many-stubMany).Nanoseconds())/n/benchCalls, "filter-ns/pkt")
				b.ReportMetric(float64(len(p.Insns)), "insns")
				b.ReportMetric(float64(p.Checks), "checks")
			})
		}
	}
}
