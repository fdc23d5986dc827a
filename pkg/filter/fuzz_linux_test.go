package filter_test

import (
	"errors"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// decodeProgram turns fuzz bytes into a classic program: 8 bytes per
// instruction, with the opcode drawn from the valid ones so that most
// inputs pass Validate, and a return appended.
func decodeProgram(data []byte) []bpf.RawInstruction {
	ops := []uint16{
		0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x00, 0x01, 0x80, 0x81, 0x60, 0x61, 0x02, 0x03, 0xb1,
		0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x44, 0x4c, 0x54, 0x5c, 0x64, 0x6c, 0x74, 0x7c, 0x84, 0x94, 0x9c, 0xa4, 0xac,
		0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d, 0x06, 0x16, 0x07, 0x87,
	}
	var prog []bpf.RawInstruction
	for len(data) >= 8 && len(prog) < 64 {
		in := bpf.RawInstruction{
			Op: ops[int(data[0])%len(ops)], Jt: data[1] % 8, Jf: data[2] % 8,
			K: uint32(data[3]) | uint32(data[4])<<8 | uint32(data[5])<<16 | uint32(data[6])<<24,
		}
		if data[7]&1 == 0 { // keep offsets and memory slots mostly small
			in.K %= 80
		}
		prog = append(prog, in)
		data = data[8:]
	}
	return append(prog, bpf.RawInstruction{Op: 0x16})
}

// FuzzTranslateCapture: every program the classic rules accept translates, loads
// into the real XDP program, and agrees with x/net/bpf's VM. Run only its
// seeds here (`go test`); never `go test -fuzz` on a shared machine: the
// program-load rate can deadlock the kernel's BPF JIT allocator.
func FuzzTranslateCapture(f *testing.F) {
	testbedtest.RequirePrivileged(f)
	for _, seed := range [][]byte{
		{0, 0, 0, 12, 0, 0, 0, 0, 17, 0, 1, 0, 8, 0, 0, 1},
		{1, 0, 0, 14, 0, 0, 0, 0, 14, 0, 0, 2, 0, 0, 0, 0},
		{3, 0, 0, 4, 0, 0, 0, 0, 21, 0, 0, 0, 0, 0, 0, 0},
		{22, 0, 0, 0, 0, 0, 0, 0},
		{27, 0, 0, 200, 0, 0, 0, 1},
		{9, 0, 0, 3, 0, 0, 0, 0, 10, 0, 0, 3, 0, 0, 0, 0},
		{2, 0, 0, 70, 0, 0, 0, 0, 38, 2, 3, 5, 0, 0, 0, 0},
		{12, 0, 0, 5, 0, 0, 0, 0, 13, 0, 0, 5, 0, 0, 0, 0},
		{6, 0, 0, 40, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 1, 0, 0, 0, 0},
		{0, 0, 0, 255, 255, 0, 0, 1},
	} {
		f.Add(seed)
	}
	packets := [][]byte{
		make([]byte, 14),
		[]byte("\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00\x45\x00\x00\x1c\x00\x00\x00\x00\x40\x11\x00\x00\xc6\x12\x00\x01\xc6\x12\x00\x02\x00\x35\x00\x35\x00\x08\x00\x00"),
		func() []byte {
			b := make([]byte, 200)
			for i := range b {
				b[i] = byte(i * 7)
			}
			return b
		}(),
	}
	tester, err := capture.NewTester(capture.HookXDP, 64, nil, capture.LinkTypeEthernet)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tester.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		prog := decodeProgram(data)
		if filter.Validate(prog) != nil {
			return
		}
		p, err := filter.Translate(prog, filter.DefaultOptions)
		if err != nil {
			if errors.Is(err, filter.ErrLiveOnly) || errors.Is(err, filter.ErrUnsupported) {
				return
			}
			t.Fatalf("translate: %v", err)
		}
		if err := tester.SetFilter(p.CaptureFilter(), capture.LinkTypeEthernet); err != nil {
			t.Fatalf("a valid program was rejected: %v\n%s", err, filter.Explain(p))
		}
		insns := make([]bpf.Instruction, len(prog))
		for i, in := range prog {
			insns[i] = in.Disassemble()
		}
		vm, err := bpf.NewVM(insns)
		if err != nil {
			return // x/net refuses some programs the kernel accepts
		}
		for i, pkt := range packets {
			n, err := vm.Run(pkt)
			if err != nil {
				continue
			}
			got, err := tester.Match(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got != (n != 0) {
				t.Fatalf("packet %d: ringtap %v, x/net/bpf %d\n%s", i, got, n, filter.Explain(p))
			}
		}
	})
}
