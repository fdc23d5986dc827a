package filter

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"
)

// tcpdump runs /usr/bin/tcpdump to compile expr (no capture: -d prints the
// program). It skips the test without tcpdump, except under CI=true.
func tcpdump(t *testing.T, flag, expr string) string {
	t.Helper()
	path, err := exec.LookPath("tcpdump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tcpdump is not installed (CI=true, not skipping): %v", err)
		}
		t.Skipf("tcpdump is not installed: %v", err)
	}
	out, err := exec.Command(path, flag, "-y", "EN10MB", expr).Output()
	if err != nil {
		t.Fatalf("tcpdump %s %q: %v", flag, expr, err)
	}
	return string(out)
}

func mustCompile(t testing.TB, expr string) []bpf.RawInstruction {
	t.Helper()
	raw, err := Compile(expr, linkEthernet)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func mustTranslate(t testing.TB, raw []bpf.RawInstruction, opts Options) *Program {
	t.Helper()
	p, err := Translate(raw, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompileErrors(t *testing.T) {
	for _, tt := range []struct {
		expr     string
		want     []string
		liveOnly bool
	}{
		{expr: "tcp port x", want: []string{`compile filter "tcp port x": `, "unknown port 'x'"}},
		{expr: "host", want: []string{`compile filter "host": `, "syntax error"}},
		{expr: "vlan 5000", want: []string{"VLAN tag 5000 greater than maximum"}},
		{expr: "ip[0] << 32 = 0", want: []string{"shift by more than 31 bits"}},
		{expr: "ip and not ip", want: []string{"rejects all packets"}},
		{expr: "inbound", want: []string{`compile filter "inbound": `, "live Linux socket", "pkttype"}, liveOnly: true},
		{expr: "outbound and tcp", want: []string{"live Linux socket"}, liveOnly: true},
		{expr: "ifindex 3", want: []string{"live Linux socket", "ifindex"}, liveOnly: true},
		{expr: "ifname eth0", want: []string{"ifname supported only on PF linktype"}},
	} {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := Compile(tt.expr, linkEthernet)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if errors.Is(err, ErrLiveOnly) != tt.liveOnly {
				t.Errorf("errors.Is(%v, ErrLiveOnly) = %v, want %v", err, !tt.liveOnly, tt.liveOnly)
			}
		})
	}
}

func TestCompileLinkTypes(t *testing.T) {
	for _, lt := range []uint16{0, 1, 101, 108, 113} {
		raw, err := Compile("ip and udp port 53", lt)
		if err != nil {
			t.Fatalf("link type %d: %v", lt, err)
		}
		if _, err := Translate(raw, DefaultOptions); err != nil {
			t.Fatalf("link type %d: %v", lt, err)
		}
	}
	eth, raw := mustCompile(t, "ip"), mustCompileLT(t, "ip", 101)
	if cmp.Equal(eth, raw) {
		t.Error("raw IP and Ethernet compile alike")
	}
}

func mustCompileLT(t *testing.T, expr string, lt uint16) []bpf.RawInstruction {
	t.Helper()
	raw, err := Compile(expr, lt)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// ParseRaw reads what `tcpdump -ddd` prints into what Compile returns.
func TestParseRawTcpdump(t *testing.T) {
	for _, expr := range []string{"udp", "tcp port 443", "vlan 100 and udp", "ip6 protochain 6",
		"tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", "ip[8] / ip[9] = 3", "ether broadcast", "less 100"} {
		t.Run(expr, func(t *testing.T) {
			got, err := ParseRaw(tcpdump(t, "-ddd", expr))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(mustCompile(t, expr), got); diff != "" {
				t.Errorf("ParseRaw(tcpdump -ddd) differs from Compile (-compile +parsed):\n%s", diff)
			}
		})
	}
}

func TestParseRaw(t *testing.T) {
	want := []bpf.RawInstruction{{Op: 0x28, K: 12}, {Op: 0x15, Jt: 0, Jf: 1, K: 0x800}, {Op: 0x06, K: 262144}, {Op: 0x06}}
	for _, text := range []string{
		"4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n",
		"  4\r\n\n40 0 0 12  \n\t21 0 1 2048\n6 0 0 262144\n6 0 0 0",
		"4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0", // iptables --bytecode
	} {
		got, err := ParseRaw(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", text, diff)
		}
	}
}

func TestParseRawErrors(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		{"", "empty program"},
		{"x\n6 0 0 1", `line 1: "x" is not an instruction count`},
		{"0", "line 1: instruction count 0 out of range 1-4096"},
		{"5000", "out of range 1-4096"},
		{"2\n6 0 0 1", "line 1: the count says 2 instructions, 1 follow"},
		{"1\n6 0 0", `line 2: want 4 decimal numbers "code jt jf k", got "6 0 0"`},
		{"1\n6 0 0 1 5", "line 2: want 4 decimal numbers"},
		{"1\n0x6 0 0 1", `line 2: code "0x6" is not a 16-bit decimal number`},
		{"2\n21 256 0 1\n6 0 0 1", `line 2: jt "256" is not a 8-bit decimal number`},
		{"1\n6 0 0 4294967296", `line 2: k "4294967296" is not a 32-bit decimal number`},
		{"2\n40 0 0 12\n\n\n21 0 0 1", "line 5: instruction 1"},
		{"3\n40 0 0 12\n21 0 5 1\n6 0 0 1", "line 3: instruction 1 (jeq #0x1 jt 2 jf 7, opcode 0x15): jump past the last instruction"},
		{"2\n255 0 0 0\n6 0 0 0", "line 2: instruction 0"},
		{"1\n40 0 0 12", "line 2: instruction 0 (ldh [12], opcode 0x28): the last instruction is not a return"},
	} {
		_, err := ParseRaw(tt.text)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRaw(%q) = %v, want an error containing %q", tt.text, err, tt.want)
		}
	}
}

// Programs for Validate and Translate, in bpf.Instruction form.
func assemble(t testing.TB, insns ...bpf.Instruction) []bpf.RawInstruction {
	t.Helper()
	raw, err := bpf.Assemble(insns)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestValidate(t *testing.T) {
	ret := bpf.RetConstant{Val: 1}
	retA := bpf.RetA{}
	valid := map[string][]bpf.RawInstruction{
		"ret":              {{Op: 0x06, K: 1}},
		"ret a":            assemble(t, retA),
		"every load":       assemble(t, bpf.LoadAbsolute{Off: 1, Size: 1}, bpf.LoadAbsolute{Off: 1, Size: 2}, bpf.LoadAbsolute{Off: 1, Size: 4}, bpf.LoadIndirect{Off: 1, Size: 1}, bpf.LoadIndirect{Off: 1, Size: 2}, bpf.LoadIndirect{Off: 1, Size: 4}, bpf.LoadMemShift{Off: 3}, bpf.LoadConstant{Dst: bpf.RegX, Val: 3}, bpf.LoadExtension{Num: bpf.ExtLen}, retA),
		"store then load":  assemble(t, bpf.StoreScratch{Src: bpf.RegA, N: 15}, bpf.LoadScratch{Dst: bpf.RegX, N: 15}, retA),
		"store both paths": assemble(t, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipTrue: 2}, bpf.StoreScratch{Src: bpf.RegA, N: 3}, bpf.Jump{Skip: 1}, bpf.StoreScratch{Src: bpf.RegX, N: 3}, bpf.LoadScratch{Dst: bpf.RegA, N: 3}, retA),
		"shift 31":         assemble(t, bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 31}, retA),
		"ancillary":        {{Op: 0x28, K: skfAdOff + 4}, {Op: 0x16}},
		"negative offset":  {{Op: 0x30, K: skfNetOff + 9}, {Op: 0x16}},
		"jumps to the end": assemble(t, bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: 1, SkipTrue: 1}, ret, ret),
		"max length":       append(make([]bpf.RawInstruction, maxInsns-1), bpf.RawInstruction{Op: 0x06}),
	}
	for name, prog := range valid {
		if err := Validate(prog); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, tt := range []struct {
		name string
		prog []bpf.RawInstruction
		want string
	}{
		{"empty", nil, "0 instructions: a classic program has 1 to 4096"},
		{"too long", append(make([]bpf.RawInstruction, maxInsns), bpf.RawInstruction{Op: 0x06}), "4097 instructions"},
		{"no return", assemble(t, bpf.LoadAbsolute{Off: 1, Size: 1}), "the last instruction is not a return"},
		{"unknown opcode", []bpf.RawInstruction{{Op: 0xff}, {Op: 0x06}}, "instruction 0 (unimp 0xff, opcode 0xff): unknown opcode"},
		{"ret x", []bpf.RawInstruction{{Op: 0x0e}}, "unknown opcode"},
		{"byte immediate", []bpf.RawInstruction{{Op: 0x10, K: 1}, {Op: 0x06}}, "unknown opcode"},
		{"ldx abs", []bpf.RawInstruction{{Op: 0x21, K: 1}, {Op: 0x06}}, "unknown opcode"},
		{"neg x", []bpf.RawInstruction{{Op: 0x8c}, {Op: 0x06}}, "unknown opcode"},
		{"jump x ja", []bpf.RawInstruction{{Op: 0x0d}, {Op: 0x06}}, "unknown opcode"},
		{"div 0", assemble(t, bpf.ALUOpConstant{Op: bpf.ALUOpDiv, Val: 0}, retA), "division by zero"},
		{"mod 0", assemble(t, bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: 0}, retA), "division by zero"},
		{"lsh 32", assemble(t, bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 32}, retA), "shift by 32: 31 at most"},
		{"rsh 40", assemble(t, bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 40}, retA), "shift by 40"},
		{"scratch 16", []bpf.RawInstruction{{Op: 0x02, K: 16}, {Op: 0x06}}, "scratch memory index 16 out of range 0-15"},
		{"ld scratch 16", []bpf.RawInstruction{{Op: 0x60, K: 16}, {Op: 0x06}}, "scratch memory index 16"},
		{"uninitialized scratch", assemble(t, bpf.LoadScratch{Dst: bpf.RegA, N: 2}, retA), "reads M[2], which is not stored on every path"},
		{"scratch on one path", assemble(t, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipTrue: 1}, bpf.StoreScratch{Src: bpf.RegA, N: 3}, bpf.LoadScratch{Dst: bpf.RegA, N: 3}, retA), "reads M[3]"},
		{"ja past the end", []bpf.RawInstruction{{Op: 0x05, K: 1}, {Op: 0x06}}, "jump past the last instruction"},
		{"ja backward", []bpf.RawInstruction{{Op: 0x06}, {Op: 0x05, K: 0xfffffffe}, {Op: 0x06}}, "backward jump"},
		{"jt past the end", []bpf.RawInstruction{{Op: 0x15, Jt: 1}, {Op: 0x06}}, "jump past the last instruction"},
		{"jf past the end", []bpf.RawInstruction{{Op: 0x15, Jf: 1}, {Op: 0x06}}, "jump past the last instruction"},
		{"unknown ancillary", []bpf.RawInstruction{{Op: 0x20, K: skfAdOff + 64}, {Op: 0x06}}, "unknown ancillary load SKF_AD_OFF+64"},
	} {
		err := Validate(tt.prog)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestTranslateErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		prog []bpf.RawInstruction
		is   error
		want string
	}{
		{"pkttype", []bpf.RawInstruction{{Op: 0x28, K: skfAdOff + 4}, {Op: 0x16}}, ErrLiveOnly, "reads the socket's pkttype"},
		{"vlan tag", []bpf.RawInstruction{{Op: 0x30, K: skfAdOff + 48}, {Op: 0x16}}, ErrLiveOnly, "vlan_avail"},
		{"net offset", []bpf.RawInstruction{{Op: 0x30, K: skfNetOff + 9}, {Op: 0x16}}, ErrUnsupported, "SKF_LL_OFF"},
		{"ll offset ind", []bpf.RawInstruction{{Op: 0x50, K: skfLLOff}, {Op: 0x16}}, ErrUnsupported, "instruction 0 (ldb [x + -2097152], opcode 0x50)"},
		{"ll offset msh", []bpf.RawInstruction{{Op: 0xb1, K: skfLLOff + 14}, {Op: 0x16}}, ErrUnsupported, "socket-filter extensions"},
		{"lsh 32", assemble(t, bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 32}, bpf.RetA{}), nil, "shift by 32"},
		{"backward before start", []bpf.RawInstruction{{Op: 0x05, K: 0xfffffff0}, {Op: 0x06}}, nil, "jump before the first instruction"},
	} {
		_, err := Translate(tt.prog, DefaultOptions)
		if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
			t.Errorf("%s: Translate = %v, want an error containing %q (%v)", tt.name, err, tt.want, tt.is)
		}
	}
	if _, err := Translate([]bpf.RawInstruction{{Op: 0x06}}, Options{Window: 1 << 31}); err == nil {
		t.Error("a window of 2 GiB translates")
	}
}

// Explain's classic part is `tcpdump -d` output.
func TestExplain(t *testing.T) {
	for _, expr := range []string{"udp", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", "ip6 protochain 6",
		"ip[0] - 3 = 2 and ip[1] * 5 = 1 and ip[2] / 3 = 1 and ip[3] % 7 = 1 and ip[4] ^ 3 = 1 and ip[5] | 3 = 7 and ip[6] << 2 = 4 and ip[7] >> 1 = 0 and -ip[8] = 1 and ip[9] & ip[10] = 1 and ip[11] + ip[12] > 3",
		"ip[2:2] > len - 14", "ether[len - 4:4] != 0", "udp[0:2] = udp[2:2]", "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0"} {
		t.Run(expr, func(t *testing.T) {
			p := mustTranslate(t, mustCompile(t, expr), DefaultOptions)
			got := Explain(p)
			classic, ebpf, ok := strings.Cut(got, "\n\n")
			if !ok {
				t.Fatalf("no eBPF part:\n%s", got)
			}
			_, classic, _ = strings.Cut(classic, "\n")
			if diff := cmp.Diff(tcpdump(t, "-d", expr), classic+"\n"); diff != "" {
				t.Errorf("classic listing differs from tcpdump -d (-tcpdump +Explain):\n%s", diff)
			}
			head := fmt.Sprintf("eBPF, %d instructions, %d bounds checks (merged per basic block), reads up to %d bytes of a frame:\n", len(p.Insns), p.Checks, p.Need)
			if !strings.HasPrefix(ebpf, head) || strings.Count(ebpf, "\n") != len(p.Insns)+1 {
				t.Errorf("eBPF part:\n%s", ebpf)
			}
		})
	}
	p := mustTranslate(t, mustCompile(t, "udp"), Options{})
	if !strings.Contains(Explain(p), "bounds checks (one per load)") {
		t.Error(Explain(p))
	}
}

func TestNeed(t *testing.T) {
	for _, tt := range []struct {
		expr string
		need uint32
	}{
		{"", 0},         // accepts everything
		{"less 100", 0}, // reads no packet byte
		{"ip", 14},      // ldh [12]
		{"udp", 55},     // IPv6's fragment header: ldb [54]
		{"host 198.18.0.1", 42},
		{"ether broadcast", 6},
		{"vlan 100 and udp", 59},
		{"tcp port 443", 78}, // 4*([14]&0xf) + 14 + 2 + 2 <= 60 + 18
		{"tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", 138}, // IP header <= 60, TCP header <= 60
		{"tcp[tcpflags] & tcp-syn != 0", 88},
		{"ip[ip[0]] = 1", 14 + 255 + 1},
		{"ether[len - 1] = 0", DefaultWindow}, // unbounded offset
		{"ip6 protochain 6", DefaultWindow},   // a loop
		{"ether[70000] = 0", 70001},           // beyond 64 KiB: within the 262144-byte snapshot
		{"ether[300000] = 0", 0},              // never in bounds: no bytes needed for it
	} {
		p := mustTranslate(t, mustCompile(t, tt.expr), DefaultOptions)
		if p.Need != tt.need || p.Window() != tt.need {
			t.Errorf("%q: Need %d, Window() %d, want %d\n%s", tt.expr, p.Need, p.Window(), tt.need, Explain(p))
		}
	}
	reject := mustTranslate(t, []bpf.RawInstruction{{Op: 0x06}}, DefaultOptions)
	if reject.Need != 0 {
		t.Errorf("ret #0: Need %d", reject.Need)
	}
	small := mustTranslate(t, mustCompile(t, "ether[len - 1] = 0"), Options{Window: 1500})
	if small.Need != 1500 {
		t.Errorf("window 1500: Need %d", small.Need)
	}
}

// Need is sound: on every corpus expression and frame, no load that
// libpcap's semantics perform in bounds ends beyond Need.
func TestNeedCoversLoads(t *testing.T) {
	frames := readFrames(t)
	for _, expr := range readExpressions(t) {
		raw := mustCompile(t, expr)
		p := mustTranslate(t, raw, DefaultOptions)
		for i, f := range frames {
			_, end := interpret(raw, f, uint32(len(f)))
			if end > p.Need {
				t.Fatalf("%q frame %d: a load reads up to byte %d, Need is %d\n%s", expr, i, end, p.Need, Explain(p))
			}
		}
	}
}

// interpret is libpcap's bpf_filter in Go (loops included, bounded), which
// also reports the end of the furthest in-bounds load.
func interpret(prog []bpf.RawInstruction, p []byte, wirelen uint32) (ret, end uint32) {
	var a, x uint32
	var m [memWords]uint32
	buflen := uint64(len(p))
	load := func(off uint64, n uint64) (uint32, bool) {
		if off+n > buflen {
			return 0, false
		}
		end = max(end, uint32(off+n))
		var v uint32
		for i := uint64(0); i < n; i++ {
			v = v<<8 | uint32(p[off+i])
		}
		return v, true
	}
	for pc, steps := 0, 0; steps < 1_000_000; pc, steps = pc+1, steps+1 {
		in := prog[pc]
		var ok bool
		switch in.Op & 0x07 {
		case classRET:
			if in.Op == classRET|retA {
				return a, end
			}
			return in.K, end
		case classLD, classLDX:
			dst := &a
			if in.Op&0x07 == classLDX {
				dst = &x
			}
			switch in.Op & 0xe0 {
			case modeIMM:
				*dst = in.K
			case modeLEN:
				*dst = wirelen
			case modeMEM:
				*dst = m[in.K]
			case modeABS:
				if *dst, ok = load(uint64(in.K), uint64(loadBytes(in.Op))); !ok {
					return 0, end
				}
			case modeIND:
				if *dst, ok = load(uint64(x)+uint64(in.K), uint64(loadBytes(in.Op))); !ok {
					return 0, end
				}
			case modeMSH:
				if x, ok = load(uint64(in.K), 1); !ok {
					return 0, end
				}
				x = (x & 0xf) << 2
			}
		case classST:
			m[in.K] = a
		case classSTX:
			m[in.K] = x
		case classMISC:
			if in.Op == classMISC|miscTAX {
				x = a
			} else {
				a = x
			}
		case classALU:
			o := in.K
			if in.Op&srcX != 0 {
				o = x
			}
			switch in.Op & 0xf0 {
			case aluADD:
				a += o
			case aluSUB:
				a -= o
			case aluMUL:
				a *= o
			case aluDIV, aluMOD:
				if o == 0 {
					return 0, end
				}
				if in.Op&0xf0 == aluDIV {
					a /= o
				} else {
					a %= o
				}
			case aluAND:
				a &= o
			case aluOR:
				a |= o
			case aluXOR:
				a ^= o
			case aluLSH:
				a <<= o // 0 from 32 on, as libpcap (X) and Go
			case aluRSH:
				a >>= o
			case aluNEG:
				a = -a
			}
		case classJMP:
			if in.Op&0xf0 == jmpJA {
				pc += int(int32(in.K))
				continue
			}
			o := in.K
			if in.Op&srcX != 0 {
				o = x
			}
			var c bool
			switch in.Op & 0xf0 {
			case jmpJEQ:
				c = a == o
			case jmpJGT:
				c = a > o
			case jmpJGE:
				c = a >= o
			case jmpJSET:
				c = a&o != 0
			}
			if c {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		}
	}
	panic("program does not terminate")
}

func TestMergedChecks(t *testing.T) {
	for _, tt := range []struct {
		expr            string
		merged, perLoad int
	}{
		{"ip", 1, 1},
		{"udp", 3, 4},
		{"host 198.18.0.1", 4, 5},
		{"tcp port 443", 5, 9},
		{"ip[8] + ip[9] > 80", 1, 3},
	} {
		raw := mustCompile(t, tt.expr)
		m, u := mustTranslate(t, raw, DefaultOptions), mustTranslate(t, raw, Options{})
		if m.Checks != tt.merged || u.Checks != tt.perLoad {
			t.Errorf("%q: %d merged checks, %d per load; want %d and %d\n%s", tt.expr, m.Checks, u.Checks, tt.merged, tt.perLoad, Explain(m))
		}
	}
	// Every load gets its own check without merging.
	for _, expr := range readExpressions(t) {
		raw := mustCompile(t, expr)
		loads := 0
		for _, in := range raw {
			if isPacketLoad(in.Op) {
				loads++
			}
		}
		m, u := mustTranslate(t, raw, DefaultOptions), mustTranslate(t, raw, Options{})
		if m.Checks > u.Checks || u.Checks > loads {
			t.Errorf("%q: %d loads, %d checks merged, %d per load", expr, loads, m.Checks, u.Checks)
		}
	}
}
