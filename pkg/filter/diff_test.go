package filter

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const expressionsFile = "../../testdata/filter/expressions.txt"

// readExpressions reads the expression corpus: one per line, # comments.
func readExpressions(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(expressionsFile)
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
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// reference runs a classic program with libpcap's own interpreter
// (pcap_offline_filter), the reference for every verdict.
type reference struct{ bpf *pcap.BPF }

func newReference(t testing.TB, prog []bpf.RawInstruction) reference {
	t.Helper()
	insns := make([]pcap.BPFInstruction, len(prog))
	for i, in := range prog {
		insns[i] = pcap.BPFInstruction{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	// NewBPFInstructionFilter does not use its handle.
	b, err := (*pcap.Handle)(nil).NewBPFInstructionFilter(insns)
	if err != nil {
		t.Fatal(err)
	}
	return reference{b}
}

func (r reference) matches(frame []byte) bool {
	return r.bpf.Matches(gopacket.CaptureInfo{CaptureLength: len(frame), Length: len(frame)}, frame)
}

// xnetVerdict runs prog with golang.org/x/net/bpf's VM; ok is false when
// the VM refuses the program (it has no backward jumps).
func xnetVerdict(prog []bpf.RawInstruction, frame []byte) (accept, ok bool) {
	insns, allDecoded := bpf.Disassemble(prog)
	if !allDecoded {
		return false, false
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		return false, false
	}
	n, err := vm.Run(frame)
	return n != 0 && err == nil, err == nil
}

// differ runs every frame through p on both hooks and compares with want.
// It returns a description of the first few disagreements.
type differ struct {
	t      *testing.T
	h      *harness
	frames [][]byte
	// skip are frames the kernel refuses to run on a hook:
	// BPF_PROG_RUN for TC wants a whole IPv4 or IPv6 header behind an
	// IPv4 or IPv6 ethertype (XDP runs them all).
	skip  map[hookKind]map[int]bool
	loads int
	pairs int
}

func newDiffer(t *testing.T, h *harness, frames [][]byte) *differ {
	d := &differ{t: t, h: h, frames: frames, skip: map[hookKind]map[int]bool{}}
	for _, kind := range []hookKind{hookXDP, hookTC} {
		d.skip[kind] = map[int]bool{}
		prog, err := h.load(kind, nil)
		d.loads++
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range frames {
			if _, err := run(prog, kind, f); errors.Is(err, unix.EINVAL) {
				d.skip[kind][i] = true
			} else if err != nil {
				t.Fatalf("%s harness, frame %d: %v", kind, i, err)
			}
		}
		prog.Close()
	}
	if n := len(d.skip[hookXDP]); n > 0 {
		t.Fatalf("XDP refuses %d frames", n)
	}
	if n := len(d.skip[hookTC]); n > len(frames)/10 {
		t.Fatalf("TC refuses %d of %d frames", n, len(frames))
	}
	return d
}

// XDP gets frames whole (up to DefaultWindow bytes, as the filter always
// may); TC gets only the first p.Need bytes, as a capture program whose
// snaplen is below Need copies, which tests Need.
func (d *differ) check(name string, p *Program, want []bool) (bad int) {
	d.t.Helper()
	for _, kind := range []hookKind{hookXDP, hookTC} {
		copyMax := uint32(DefaultWindow)
		if kind == hookTC {
			copyMax = p.Need
		}
		prog, err := d.h.loadWindow(kind, p, copyMax)
		d.loads++
		if err != nil {
			d.t.Errorf("%s: %v\n%s", name, err, Explain(p))
			return 1
		}
		var report strings.Builder
		for i, f := range d.frames {
			if d.skip[kind][i] {
				continue
			}
			got, err := run(prog, kind, f)
			if err != nil {
				d.t.Fatalf("%s on %s, frame %d: %v", name, kind, i, err)
			}
			d.pairs++
			if got != want[i] {
				if bad++; bad <= 3 {
					fmt.Fprintf(&report, "\n  frame %d (%d bytes, % x): %s %v, libpcap %v", i, len(f), f[:min(len(f), 64)], kind, got, want[i])
				}
			}
		}
		prog.Close()
		if bad > 0 {
			d.t.Errorf("%s: %d verdicts differ from libpcap:%s\n%s", name, bad, report.String(), Explain(p))
			return bad
		}
	}
	return 0
}

// TestDifferential compiles every expression of the corpus, translates it,
// loads it into the XDP and the TC harness and compares the verdict on
// every frame with libpcap's. The first unmergedSubset expressions also
// run with one bounds check per load.
func TestDifferential(t *testing.T) {
	const unmergedSubset = 50
	h := newHarness(t)
	frames := readFrames(t)
	exprs := readExpressions(t)
	if len(frames) < 500 || len(exprs) < 300 {
		t.Fatalf("corpus too small: %d frames, %d expressions", len(frames), len(exprs))
	}
	d := newDiffer(t, h, frames)
	accepts, xnetDiffer, xnetRefused := 0, map[string]int{}, 0
	for i, expr := range exprs {
		raw, err := Compile(expr, linkEthernet)
		if err != nil {
			t.Errorf("%q: %v", expr, err)
			continue
		}
		ref := newReference(t, raw)
		want := make([]bool, len(frames))
		for j, f := range frames {
			want[j] = ref.matches(f)
			if want[j] {
				accepts++
			}
			if v, ok := xnetVerdict(raw, f); ok && v != want[j] {
				xnetDiffer[expr]++
			} else if !ok && j == 0 {
				xnetRefused++
			}
		}
		for _, opts := range []Options{DefaultOptions, {MergeChecks: false}} {
			if !opts.MergeChecks && i >= unmergedSubset {
				break
			}
			p, err := Translate(raw, opts)
			if err != nil {
				t.Errorf("%q: %v", expr, err)
				continue
			}
			d.check(fmt.Sprintf("%q (merge %v)", expr, opts.MergeChecks), p, want)
		}
	}
	t.Logf("%d expressions × %d frames: %d verdicts compared on XDP and TC (%d program loads; TC cannot run %d short IP frames); libpcap accepted %d of %d",
		len(exprs), len(frames), d.pairs, d.loads, len(d.skip[hookTC]), accepts, len(exprs)*len(frames))
	t.Logf("x/net/bpf's VM refuses %d of the programs (backward jumps, neg) and differs from libpcap on %d", xnetRefused, len(xnetDiffer))
	for expr, n := range xnetDiffer {
		t.Logf("x/net/bpf's VM differs from libpcap on %d frames for %q", n, expr)
	}
}

const linkEthernet = 1

// libpcap's protochain loop follows a header chain of any length; the
// translation gives up after LoopLimit headers and rejects (documented).
func TestLoopLimit(t *testing.T) {
	h := newHarness(t)
	raw := mustCompile(t, "ip6 protochain 6")
	p := mustTranslate(t, raw, DefaultOptions)
	ref := newReference(t, raw)
	for _, kind := range []hookKind{hookXDP, hookTC} {
		prog, err := h.load(kind, p)
		if err != nil {
			t.Fatal(err)
		}
		defer prog.Close()
		for _, n := range []int{0, 1, LoopLimit - 1, LoopLimit, LoopLimit + 1, 2 * LoopLimit} {
			exts := make([]ext6, n)
			for i := range exts {
				exts[i] = ext6{typ: []byte{0, 60, 43}[i%3], size: 8}
			}
			first, body := chain6(exts, 6, tcp(1, 2, 0x02, nil, nil))
			frame := eth(macB, macA, 0x86dd, ipv6("2001:db8::1", "2001:db8::2", first, body))
			got, err := run(prog, kind, frame)
			if err != nil {
				t.Fatal(err)
			}
			if want := n <= LoopLimit; got != want || !ref.matches(frame) {
				t.Errorf("%s, %d extension headers: accepted %v, want %v (libpcap %v)", kind, n, got, want, ref.matches(frame))
			}
		}
	}
}

// The same comparison for raw IP (link type 101): the corpus' untagged
// IPv4 and IPv6 frames without their Ethernet header.
func TestDifferentialRawIP(t *testing.T) {
	h := newHarness(t)
	var frames [][]byte
	for _, f := range readFrames(t) {
		if len(f) >= 28 && (f[12] == 0x08 && f[13] == 0x00 || f[12] == 0x86 && f[13] == 0xdd) {
			frames = append(frames, f[14:])
		}
	}
	if len(frames) < 300 {
		t.Fatalf("only %d raw IP frames", len(frames))
	}
	d := newDiffer(t, h, frames)
	for _, expr := range []string{"ip", "ip6", "tcp", "udp", "icmp", "icmp6", "host 198.18.0.1", "net 198.18.0.0/15",
		"src net 2001:db8::/32", "port 53", "tcp port 443", "portrange 1000-2000", "udp and not port 53", "ip6 and tcp",
		"ip6 protochain 6", "tcp[tcpflags] & tcp-syn != 0", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
		"ip[6:2] & 0x1fff != 0", "ip multicast", "ip proto 47", "less 100", "greater 200", "ip[0] & 0xf > 5"} {
		raw, err := Compile(expr, 101)
		if err != nil {
			t.Fatal(err)
		}
		ref := newReference(t, raw)
		want := make([]bool, len(frames))
		for i, f := range frames {
			want[i] = ref.matches(f)
		}
		d.check(fmt.Sprintf("%q (raw IP)", expr), mustTranslate(t, raw, DefaultOptions), want)
	}
	t.Logf("%d raw IP frames, %d verdicts compared", len(frames), d.pairs)
}

// Loads far into large frames (constant offsets above 32 KiB take another
// instruction sequence), up to the window's end. Only XDP runs frames this
// large.
func TestLargeFrames(t *testing.T) {
	h := newHarness(t)
	var frames [][]byte
	for _, n := range []int{32767, 32768, 32769, 40000, 60000, 65535} {
		f := make([]byte, n)
		for i := range f {
			f[i] = byte(i * 13)
		}
		frames = append(frames, f, f[:n-1])
	}
	for _, expr := range []string{"ether[32767] = 0xf3", "ether[32768] = 0", "ether[32767:2] = 0xf300", "ether[39996:4] != 0",
		"ether[40000] = 0x40", "ether[65531:4] = 0xbfccd9e6", "ether[65534] = 0xe6", "ether[65535] = 0",
		"ether[len - 1] = 0xe6", "ether[len - 4:4] = 0xccd9e6f3", "ether[ether[1] * 200 + 40000] = 0x48", "greater 40000"} {
		raw := mustCompile(t, expr)
		p := mustTranslate(t, raw, DefaultOptions)
		ref := newReference(t, raw)
		prog, err := h.load(hookXDP, p)
		if err != nil {
			t.Fatal(err)
		}
		accepted := 0
		for i, f := range frames {
			got, err := run(prog, hookXDP, f)
			if err != nil {
				t.Fatalf("%d bytes: %v", len(f), err)
			}
			if want := ref.matches(f); got != want {
				t.Errorf("%q, frame %d (%d bytes): %v, libpcap %v\n%s", expr, i, len(f), got, want, Explain(p))
			}
			if got {
				accepted++
			}
		}
		prog.Close()
		if (accepted == 0 || accepted == len(frames)) && expr != "ether[65535] = 0" { // no frame has 65536 bytes
			t.Errorf("%q accepts %d of %d frames: a weak test", expr, accepted, len(frames))
		}
	}
}

// Corners of the semantics, on hand-written programs: the translation
// agrees with libpcap. x/net/bpf's VM agrees too where it runs: it computes
// X + k in a Go int (no wrap, like libpcap), but has no "neg" (NewVM
// refuses the program) and no backward jumps.
func TestCorners(t *testing.T) {
	h := newHarness(t)
	frame := eth(macB, macA, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 17, udp(53, 53, []byte{0x80, 0, 0, 0}), v4opts{}))
	a := func(insns ...bpf.Instruction) []bpf.RawInstruction { return assemble(t, insns...) }
	ret1, retA := bpf.RetConstant{Val: 1}, bpf.RetA{}
	for _, tt := range []struct {
		name      string
		prog      []bpf.RawInstruction
		want      bool
		xnetFails bool // x/net/bpf's VM refuses the program
	}{
		{"x+k wraps", a(bpf.LoadConstant{Dst: bpf.RegX, Val: 0xffffffff}, bpf.LoadIndirect{Off: 2, Size: 1}, ret1), false, false},
		{"x+k at the end", a(bpf.LoadExtension{Num: bpf.ExtLen}, bpf.ALUOpConstant{Op: bpf.ALUOpSub, Val: 4}, bpf.TAX{}, bpf.LoadIndirect{Off: 2, Size: 2}, ret1), true, false},
		{"x+k past the end", a(bpf.LoadExtension{Num: bpf.ExtLen}, bpf.ALUOpConstant{Op: bpf.ALUOpSub, Val: 4}, bpf.TAX{}, bpf.LoadIndirect{Off: 2, Size: 4}, ret1), false, false},
		{"div by x=0", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 7}, bpf.ALUOpX{Op: bpf.ALUOpDiv}, ret1), false, false},
		{"mod by x=0", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 7}, bpf.ALUOpX{Op: bpf.ALUOpMod}, ret1), false, false},
		{"div by x", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 7}, bpf.LoadConstant{Dst: bpf.RegX, Val: 7}, bpf.ALUOpX{Op: bpf.ALUOpDiv}, retA), true, false},
		{"lsh x=31", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 1}, bpf.LoadConstant{Dst: bpf.RegX, Val: 31}, bpf.ALUOpX{Op: bpf.ALUOpShiftLeft}, retA), true, false},
		{"lsh x=32", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 1}, bpf.LoadConstant{Dst: bpf.RegX, Val: 32}, bpf.ALUOpX{Op: bpf.ALUOpShiftLeft}, retA), false, false},
		{"rsh x=33", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 0xffffffff}, bpf.LoadConstant{Dst: bpf.RegX, Val: 33}, bpf.ALUOpX{Op: bpf.ALUOpShiftRight}, retA), false, false},
		{"ret a high bit", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 0x80000000}, retA), true, false},
		{"ret #0", a(bpf.RetConstant{Val: 0}), false, false},
		{"neg", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 1}, bpf.NegateA{}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffffffff, SkipFalse: 1}, ret1, bpf.RetConstant{}), true, true},
		{"add wraps", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 0xffffffff}, bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1}, retA), false, false},
		{"mul wraps", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 0x10000}, bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0x10000}, retA), false, false},
		{"len", a(bpf.LoadExtension{Num: bpf.ExtLen}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(len(frame)), SkipFalse: 1}, ret1, bpf.RetConstant{}), true, false},
		{"jset jt=0", a(bpf.LoadAbsolute{Off: 42, Size: 1}, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x80, SkipFalse: 1}, ret1, bpf.RetConstant{}), true, false},
		{"jset x jt=0", a(bpf.LoadConstant{Dst: bpf.RegX, Val: 0x40}, bpf.LoadAbsolute{Off: 42, Size: 1}, bpf.JumpIfX{Cond: bpf.JumpBitsSet, SkipFalse: 1}, bpf.RetConstant{}, ret1), true, false},
		{"jgt x", a(bpf.LoadConstant{Dst: bpf.RegX, Val: 0x7f}, bpf.LoadAbsolute{Off: 42, Size: 1}, bpf.JumpIfX{Cond: bpf.JumpGreaterThan, SkipTrue: 1}, bpf.RetConstant{}, ret1), true, false},
		{"jge unsigned", a(bpf.LoadAbsolute{Off: 42, Size: 4}, bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x7fffffff, SkipTrue: 1}, bpf.RetConstant{}, ret1), true, false},
		{"scratch", a(bpf.LoadConstant{Dst: bpf.RegA, Val: 5}, bpf.StoreScratch{Src: bpf.RegA, N: 0}, bpf.LoadConstant{Dst: bpf.RegX, Val: 9}, bpf.StoreScratch{Src: bpf.RegX, N: 15},
			bpf.LoadScratch{Dst: bpf.RegA, N: 15}, bpf.LoadScratch{Dst: bpf.RegX, N: 0}, bpf.ALUOpX{Op: bpf.ALUOpSub}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipFalse: 1}, ret1, bpf.RetConstant{}), true, false},
		{"msh", a(bpf.LoadMemShift{Off: 14}, bpf.TXA{}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 20, SkipFalse: 1}, ret1, bpf.RetConstant{}), true, false},
		{"msh past the end", a(bpf.LoadMemShift{Off: uint32(len(frame))}, ret1), false, false},
		{"ld past the end", a(bpf.LoadAbsolute{Off: uint32(len(frame)) - 3, Size: 4}, ret1), false, false},
		{"ld at the end", a(bpf.LoadAbsolute{Off: uint32(len(frame)) - 4, Size: 4}, ret1), true, false},
		{"ld at the window's end", a(bpf.LoadAbsolute{Off: DefaultWindow - 4, Size: 4}, ret1), false, false},
		{"ld beyond the window", a(bpf.LoadAbsolute{Off: DefaultWindow - 3, Size: 4}, ret1), false, false},
		{"ld below SKF_LL_OFF", a(bpf.LoadAbsolute{Off: skfLLOff - 1, Size: 1}, ret1), false, false},
	} {
		p := mustTranslate(t, tt.prog, DefaultOptions)
		ref := newReference(t, tt.prog)
		if ref.matches(frame) != tt.want {
			t.Errorf("%s: libpcap says %v", tt.name, !tt.want)
		}
		if x, ok := xnetVerdict(tt.prog, frame); ok == tt.xnetFails || ok && x != tt.want {
			t.Errorf("%s: x/net/bpf says %v (ran: %v)", tt.name, x, ok)
		}
		prog, err := h.load(hookXDP, p)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got, err := run(prog, hookXDP, frame)
		prog.Close()
		if err != nil || got != tt.want {
			t.Errorf("%s: translated %v (%v), want %v\n%s", tt.name, got, err, tt.want, Explain(p))
		}
	}
}
