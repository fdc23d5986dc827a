package filter

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/net/bpf"
)

// fuzzOps are the opcodes decodeProgram draws from: every one the kernel
// knows, plus a few it does not.
var fuzzOps = func() []uint16 {
	var ops []uint16
	for op := range allowed {
		if allowed[op] {
			ops = append(ops, uint16(op))
		}
	}
	return append(ops, 0x0e, 0x10, 0x8c, 0xff)
}()

// decodeProgram turns fuzz input into a short classic program: 7 bytes
// per instruction (opcode selector, jt, jf, k selector, 3 bytes of k),
// then a "ret a". Offsets and constants are mostly small so that loads
// land in the packets and comparisons sometimes hold.
func decodeProgram(data []byte) []bpf.RawInstruction {
	var prog []bpf.RawInstruction
	for len(data) >= 7 && len(prog) < 40 {
		in := bpf.RawInstruction{Op: fuzzOps[int(data[0])%len(fuzzOps)], Jt: data[1] % 6, Jf: data[2] % 6}
		k := uint32(data[4]) | uint32(data[5])<<8 | uint32(data[6])<<16
		switch data[3] % 8 {
		case 0, 1, 2:
			in.K = k % 64 // offsets in the packets, small constants
		case 3:
			in.K = k % 16
		case 4:
			in.K = k % 256
		case 5:
			in.K = k // up to 2^24: loads beyond the window
		case 6:
			in.K = binary.BigEndian.Uint32(data[3:7]) // anything
		case 7:
			in.K = 0xffffffff - k%8 // -1...-8: backward jumps, wrapping offsets
		}
		prog = append(prog, in)
		data = data[7:]
	}
	prog = append(prog, bpf.RawInstruction{Op: classRET | retA})
	// Mostly keep jumps inside the program.
	for pc := range prog {
		in, rest := &prog[pc], uint32(len(prog)-pc-1)
		if in.Op&0x07 != classJMP || rest == 0 || in.Jt == 5 {
			continue
		}
		in.Jt, in.Jf = in.Jt%uint8(min(rest, 255)), in.Jf%uint8(min(rest, 255))
		if in.Op == classJMP|jmpJA && int32(in.K) >= 0 {
			in.K %= rest
		}
	}
	return prog
}

var fuzzPackets = [][]byte{
	make([]byte, 14),
	eth(macB, macA, 0x0800, ipv4("198.18.0.1", "198.18.0.2", 17, udp(53, 53, []byte{0, 1, 2, 3}), v4opts{})),
	func() []byte {
		b := make([]byte, 300)
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		return b
	}(),
	eth(macBcast, macA, 0xffff, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
}

// FuzzTranslate: every program Validate accepts translates (or is refused
// with ErrUnsupported or ErrLiveOnly), the verifier accepts it, and it
// agrees with libpcap's interpreter on a few packets, merged checks or not;
// Need covers every load. `go test` runs only the seeds. NEVER run it with
// -fuzz on a shared machine: the rate of BPF program loads and frees can
// deadlock the kernel's JIT allocator.
func FuzzTranslate(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{28, 0, 0, 0, 12, 0, 0}, // ldh [12]
		{30, 0, 0, 0, 12, 0, 0, 50, 0, 1, 0, 8, 0, 0}, // ldh [12]; jeq
		{34, 0, 0, 0, 14, 0, 0, 42, 0, 0, 0, 9, 0, 0}, // ldxb 4*([14]&0xf); ld [x+9]
		{3, 0, 0, 4, 40, 0, 0},                        // loads beyond the packets
		{20, 0, 0, 1, 5, 0, 0, 5, 0, 0, 0, 3, 0, 0},
		{12, 1, 2, 0, 7, 0, 0, 13, 3, 0, 1, 9, 0, 0, 27, 0, 0, 0, 0, 0, 0},
		{40, 0, 0, 6, 0, 0, 0, 41, 0, 0, 1, 2, 0, 0},
		{9, 0, 0, 7, 1, 0, 0}, // backward jumps
		{2, 0, 0, 0, 3, 0, 0, 38, 0, 0, 0, 3, 0, 0, 1, 0, 0, 0, 3, 0, 0},
		{45, 4, 1, 5, 255, 255, 255, 44, 0, 0, 6, 1, 2, 3, 4},
		{17, 0, 0, 0, 31, 0, 0, 18, 0, 0, 0, 33, 0, 0, 19, 0, 0, 0, 0, 0, 0},
	} {
		f.Add(seed)
	}
	h := newHarness(f)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzTranslate(t, h, data) })
}

func fuzzTranslate(t *testing.T, h *harness, data []byte) {
	prog := decodeProgram(data)
	vErr := Validate(prog)
	for _, opts := range []Options{DefaultOptions, {}} {
		p, err := Translate(prog, opts)
		switch {
		case errors.Is(err, ErrUnsupported) || errors.Is(err, ErrLiveOnly):
			return
		case vErr == nil && err != nil:
			t.Fatalf("a valid program does not translate: %v\n%v", err, prog)
		case vErr != nil && err == nil && check(prog, true) != nil:
			t.Fatalf("Translate accepts what Validate refuses (%v)\n%v", vErr, prog)
		case err != nil:
			return
		}
		if vErr != nil {
			// A backward jump: only libpcap runs those, and it may
			// never stop; just load it.
			prog, err := h.load(hookXDP, p)
			if err != nil {
				t.Fatalf("the verifier refuses a translation: %v", err)
			}
			prog.Close()
			return
		}
		ebpfProg, err := h.load(hookXDP, p)
		if err != nil {
			t.Fatalf("the verifier refuses a valid program's translation: %v\n%s", err, Explain(p))
		}
		ref := newReference(t, prog)
		for i, pkt := range fuzzPackets {
			want := ref.matches(pkt)
			got, err := run(ebpfProg, hookXDP, pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("packet %d: translated %v, libpcap %v\n%s", i, got, want, Explain(p))
			}
			if ret, end := interpret(prog, pkt, uint32(len(pkt))); end > p.Need || (ret != 0) != want {
				t.Errorf("packet %d: loads up to %d, Need %d; interpreter %d, libpcap %v", i, end, p.Need, ret, want)
			}
		}
		ebpfProg.Close()
	}
}
