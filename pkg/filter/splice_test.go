package filter

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/ringtap/ringtap/gen"
)

// function returns the instructions of the function named symbol.
func function(t *testing.T, insns asm.Instructions, symbol string) asm.Instructions {
	t.Helper()
	for i, ins := range insns {
		if ins.Symbol() != symbol {
			continue
		}
		end := i + 1
		for end < len(insns) && insns[end].Symbol() == "" {
			end++
		}
		return insns[i:end]
	}
	t.Fatalf("no function %s", symbol)
	return nil
}

func TestSplice(t *testing.T) {
	spec, err := gen.LoadCapture()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rt_xdp", "rt_tc_ingress", "rt_tc_egress"} {
		ps := spec.Programs[name].Copy()
		stub := function(t, ps.Instructions, stubSymbol)
		fn, src := btf.FuncMetadata(&stub[0]), stub[0].Source()
		if fn == nil || src == nil {
			t.Fatalf("%s: the stub has no BTF func info or line info", name)
		}
		others := len(ps.Instructions) - len(stub)
		for _, expr := range []string{"udp", "ip6 protochain 6", "tcp port 443"} {
			p := mustTranslate(t, mustCompile(t, expr), DefaultOptions)
			if err := p.Splice(ps, stubSymbol); err != nil { // twice in a row: the symbol stays
				t.Fatal(err)
			}
			body := function(t, ps.Instructions, stubSymbol)
			if len(body) != len(p.Insns) || len(ps.Instructions) != others+len(p.Insns) {
				t.Fatalf("%s: %d instructions spliced, %d translated; program %d, want %d",
					name, len(body), len(p.Insns), len(ps.Instructions), others+len(p.Insns))
			}
			if btf.FuncMetadata(&body[0]) != fn || body[0].Source() != src {
				t.Errorf("%s: the first instruction lost the stub's func or line info", name)
			}
			for i := range body {
				if body[i].OpCode != p.Insns[i].OpCode || body[i].Constant != p.Insns[i].Constant || body[i].Offset != p.Insns[i].Offset {
					t.Fatalf("%s: instruction %d is %v, translated %v", name, i, body[i], p.Insns[i])
				}
			}
		}
	}
	p := mustTranslate(t, mustCompile(t, "udp"), DefaultOptions)
	if err := p.Splice(spec.Programs["rt_xdp"].Copy(), "no_such_function"); err == nil || !strings.Contains(err.Error(), "no function no_such_function") {
		t.Errorf("splicing a missing function: %v", err)
	}
}

// The filter spliced into the real capture programs loads (the kernel
// wants func and line info for the spliced function) and filters: the
// programs' "matched" counter agrees with libpcap.
func TestSpliceCaptureProgram(t *testing.T) {
	requirePrivileged(t, "loading the capture programs")
	frames := readFrames(t)
	base, err := gen.LoadCapture()
	if err != nil {
		t.Fatal(err)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	d := newDiffer(t, h, frames)
	for _, expr := range []string{"udp", "vlan and tcp port 443", "ip6 protochain 6", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420"} {
		raw := mustCompile(t, expr)
		p := mustTranslate(t, raw, DefaultOptions)
		ref := newReference(t, raw)
		for name, kind := range map[string]hookKind{"rt_xdp": hookXDP, "rt_tc_ingress": hookTC} {
			spec := base.Copy()
			spec.Maps["rt_scratch_map"].MaxEntries = uint32(ncpu)
			spec.Maps["rt_rings"].MaxEntries = uint32(ncpu)
			spec.Maps["rt_rings"].InnerMap.MaxEntries = 1 << 16
			ps := spec.Programs[name]
			spec.Programs = map[string]*ebpf.ProgramSpec{name: ps}
			// As pkg/capture does: the filter runs on its window.
			if err := spec.Variables["rt_filtered"].Set(uint8(1)); err != nil {
				t.Fatal(err)
			}
			if err := spec.Variables["rt_window"].Set(uint32(max(1, min(p.Need, 65540)))); err != nil {
				t.Fatal(err)
			}
			if err := p.Splice(ps, stubSymbol); err != nil {
				t.Fatal(err)
			}
			coll, err := ebpf.NewCollection(spec)
			if err != nil {
				t.Fatalf("%s with %q: %v", name, expr, err)
			}
			want := 0
			for i, f := range frames {
				if d.skip[kind][i] {
					continue
				}
				if _, err := coll.Programs[name].Run(&ebpf.RunOptions{Data: f}); err != nil {
					t.Fatalf("%s frame %d: %v", name, i, err)
				}
				if ref.matches(f) {
					want++
				}
			}
			var perCPU []gen.CaptureRtCounters
			if err := coll.Maps["rt_counters_map"].Lookup(uint32(0), &perCPU); err != nil {
				t.Fatal(err)
			}
			var seen, matched uint64
			for _, c := range perCPU {
				seen += c.Seen
				matched += c.Matched
			}
			coll.Close()
			if matched != uint64(want) || seen != uint64(len(frames)-len(d.skip[kind])) {
				t.Errorf("%s with %q: saw %d frames and matched %d, libpcap matches %d of %d", name, expr, seen, matched, want, len(frames)-len(d.skip[kind]))
			}
		}
	}
}
