package filter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// ParseRaw parses classic BPF as `tcpdump -ddd` prints it: the instruction
// count, then one "code jt jf k" line per instruction, in decimal. Records
// may also be separated by commas, as in iptables' `--bytecode`. The
// program must be one Translate accepts (Validate's rules plus libpcap's
// backward jumps); errors name the line.
func ParseRaw(text string) ([]bpf.RawInstruction, error) {
	type record struct {
		line int
		text string
	}
	var recs []record
	for n, l := range strings.Split(text, "\n") {
		for _, r := range strings.Split(l, ",") {
			if r = strings.TrimSpace(r); r != "" {
				recs = append(recs, record{n + 1, r})
			}
		}
	}
	if len(recs) == 0 {
		return nil, errors.New("empty program: expected `tcpdump -ddd` output (a count, then \"code jt jf k\" lines)")
	}
	count, err := strconv.ParseUint(recs[0].text, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("line %d: %q is not an instruction count", recs[0].line, recs[0].text)
	}
	if count == 0 || count > maxInsns {
		return nil, fmt.Errorf("line %d: instruction count %d out of range 1-%d", recs[0].line, count, maxInsns)
	}
	insns := recs[1:]
	if uint64(len(insns)) != count {
		return nil, fmt.Errorf("line %d: the count says %d instructions, %d follow", recs[0].line, count, len(insns))
	}
	prog := make([]bpf.RawInstruction, len(insns))
	for i, r := range insns {
		f := strings.Fields(r.text)
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: want 4 decimal numbers \"code jt jf k\", got %q", r.line, r.text)
		}
		var v [4]uint64
		for j, s := range f {
			bits := [4]int{16, 8, 8, 32}[j]
			if v[j], err = strconv.ParseUint(s, 10, bits); err != nil {
				return nil, fmt.Errorf("line %d: %s %q is not a %d-bit decimal number", r.line, [4]string{"code", "jt", "jf", "k"}[j], s, bits)
			}
		}
		prog[i] = bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}
	}
	if err := check(prog, true); err != nil {
		var ie *InsnError
		if errors.As(err, &ie) {
			return nil, fmt.Errorf("line %d: %w", insns[ie.PC].line, err)
		}
		return nil, err
	}
	return prog, nil
}
