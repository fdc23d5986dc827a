package filter

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// Splice replaces the body of the function named symbol in spec (a
// subprogram linked into the program's instructions) with the translated
// filter. The new first instruction keeps the stub's symbol, BTF function
// info and source line, which the kernel needs for its func and line info.
func (p *Program) Splice(spec *ebpf.ProgramSpec, symbol string) error {
	insns := spec.Instructions
	start := -1
	for i, ins := range insns {
		if ins.Symbol() == symbol {
			start = i
			break
		}
	}
	if start < 0 {
		return fmt.Errorf("program %s has no function %s to replace", spec.Name, symbol)
	}
	end := len(insns)
	for i := start + 1; i < len(insns); i++ {
		if insns[i].Symbol() != "" {
			end = i
			break
		}
	}
	body := make(asm.Instructions, len(p.Insns))
	copy(body, p.Insns)
	first := insns[start]
	body[0] = body[0].WithSymbol(symbol)
	if fn := btf.FuncMetadata(&first); fn != nil {
		body[0] = btf.WithFuncMetadata(body[0], fn)
	}
	if src := first.Source(); src != nil {
		body[0] = body[0].WithSource(src)
	}
	out := make(asm.Instructions, 0, len(insns)-(end-start)+len(body))
	out = append(out, insns[:start]...)
	out = append(out, body...)
	out = append(out, insns[end:]...)
	spec.Instructions = out
	return nil
}
