package filter

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/ringtap/ringtap/gen"
	"github.com/ringtap/ringtap/pkg/capture"
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

// The filter in the real capture programs (through pkg/capture's
// dispatcher, which calls it as a function of its own) loads, with the func
// and line info the kernel wants for it, and filters: the programs'
// verdicts agree with libpcap.
func TestSpliceCaptureProgram(t *testing.T) {
	requirePrivileged(t, "loading the capture programs")
	frames := readFrames(t)
	h := newHarness(t)
	d := newDiffer(t, h, frames)
	for _, expr := range []string{"udp", "vlan and tcp port 443", "ip6 protochain 6", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420"} {
		raw := mustCompile(t, expr)
		p := mustTranslate(t, raw, DefaultOptions)
		ref := newReference(t, raw)
		for name, kind := range map[string]hookKind{"xdp": hookXDP, "tc": hookTC} {
			hook := capture.HookXDP
			if kind == hookTC {
				hook = capture.HookTC
			}
			tester, err := capture.NewTester(hook, 0, p.CaptureFilter(), capture.LinkTypeEthernet)
			if err != nil {
				t.Fatalf("%s with %q: %v", name, expr, err)
			}
			want, got, runs := 0, 0, 0
			for i, f := range frames {
				if d.skip[kind][i] {
					continue
				}
				hit, err := tester.Match(f)
				if err != nil {
					t.Fatalf("%s frame %d: %v", name, i, err)
				}
				runs++
				if hit {
					got++
				}
				if ref.matches(f) {
					want++
				}
			}
			tester.Close()
			if got != want {
				t.Errorf("%s with %q: matched %d of %d frames, libpcap %d", name, expr, got, runs, want)
			}
		}
	}
}
