package capture

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ringtap/ringtap/gen"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// testFilter is a translated-filter stand-in: accept when the byte at
// offset k (inside the window) equals v. Real filters come from
// pkg/filter, which imports this package; its shape is what matters here.
func testFilter(k int16, v int32) *Filter {
	skip := func(ins asm.Instruction, n int16) asm.Instruction {
		ins = ins.WithReference("")
		ins.Offset = n
		return ins
	}
	insns := asm.Instructions{
		asm.Mov.Imm(asm.R0, 0),
		skip(asm.JLT.Imm(asm.R2, int32(k)+1, ""), 3),
		asm.LoadMem(asm.R3, asm.R1, k, asm.Byte),
		skip(asm.JNE.Imm(asm.R3, v, ""), 1),
		asm.Mov.Imm(asm.R0, 1),
		asm.Return(),
	}
	return &Filter{
		Insns:  func(uint16) (asm.Instructions, error) { return insns, nil },
		Window: func(uint16) (uint32, error) { return uint32(k) + 1, nil },
	}
}

var processedRE = regexp.MustCompile(`processed (\d+) insns`)

// TestVerifierWorkPerFilter reports how much the verifier does for a
// program with n filtered captures, at each hook: it must grow about
// linearly with n, on every kernel of the matrix (before 6.3 verifiers
// mark every scalar precise once precision tracking meets a subprogram
// call, and a dispatcher that branched on known verdicts grew as 2^n: 5.10
// gave up at 16 filters). It fails when 64 filters exceed a tenth of the
// verifier's budget.
func TestVerifierWorkPerFilter(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	spec, err := gen.LoadCapture()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ProbeKernel(); err != nil {
		t.Fatal(err)
	}
	m, err := newMaps(spec, 1<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	k, _ := ProbeKernel()
	kinds := []int{kindTCIn}
	if k.XDP {
		kinds = append(kinds, kindXDP)
	}
	for _, kind := range kinds {
		for _, n := range []int{1, 2, 4, 8, 16, 32, 64} {
			var slots []slotProg
			for i := range n {
				slots = append(slots, slotProg{slot: i, snaplen: uint32(64 + i), filter: testFilter(int16(20+i%8), int32(i))})
			}
			start := time.Now()
			prog, err := loadProgram(spec, m, progParams{kind: kind, wakeup: 1 << 16, slots: slots, logLevel: ebpf.LogLevelStats})
			if err != nil {
				t.Fatalf("%s with %d filters: %v", kindProg[kind], n, err)
			}
			info := ""
			if vl := prog.VerifierLog; vl != "" {
				if mm := processedRE.FindStringSubmatch(vl); mm != nil {
					info = mm[1]
				}
			}
			prog.Close()
			insns, _ := strconv.Atoi(info)
			t.Logf("%s, %2d filters: verifier processed %7s insns in %v", kindProg[kind], n, info, time.Since(start).Round(time.Millisecond))
			if n == 64 && insns > 100_000 {
				t.Errorf("%s with 64 filters: the verifier processed %d instructions, more than a tenth of its budget", kindProg[kind], insns)
			}
		}
	}
}
