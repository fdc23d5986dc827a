package filter

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// ParseRaw parses classic BPF in `tcpdump -ddd` format: the instruction
// count on the first line, then one "code jt jf k" line per instruction
// (decimal). Commas between fields are accepted, as in `nft`/`iptables`
// bytecode, so a program can be pasted from either.
func ParseRaw(text string) ([]bpf.RawInstruction, error) {
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(text, ",", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("empty program: expected `tcpdump -ddd` output")
	}
	n, err := strconv.Atoi(lines[0])
	if err != nil {
		return nil, fmt.Errorf("line 1: instruction count %q is not a number", lines[0])
	}
	if n <= 0 || n > maxInsns {
		return nil, fmt.Errorf("line 1: instruction count %d out of range 1-%d", n, maxInsns)
	}
	if len(lines)-1 != n {
		return nil, fmt.Errorf("line 1 says %d instructions, %d follow", n, len(lines)-1)
	}
	prog := make([]bpf.RawInstruction, n)
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: want 4 numbers \"code jt jf k\", got %q", i+2, l)
		}
		var v [4]uint64
		for j, s := range f {
			bits := []int{16, 8, 8, 32}[j]
			if v[j], err = strconv.ParseUint(s, 10, bits); err != nil {
				return nil, fmt.Errorf("line %d: field %d %q: not a %d-bit number", i+2, j+1, s, bits)
			}
		}
		prog[i] = bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}
	}
	if err := Validate(prog); err != nil {
		return nil, err
	}
	return prog, nil
}
