package filter

import (
	"sync"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"

	"github.com/ringtap/ringtap/pkg/capture"
)

// ForCapture compiles expr for the capture package: per link type, once,
// translated with DefaultOptions. The expression is compiled for Ethernet
// right away so a bad expression fails before anything is loaded.
func ForCapture(expr string) (*capture.Filter, error) {
	if _, err := Compile(expr, capture.LinkTypeEthernet); err != nil {
		return nil, err
	}
	return forCapture(func(lt uint16) ([]bpf.RawInstruction, error) { return Compile(expr, lt) }), nil
}

// ForCaptureRaw uses a classic program (e.g. from ParseRaw) for every link
// type.
func ForCaptureRaw(prog []bpf.RawInstruction) (*capture.Filter, error) {
	if _, err := Translate(prog, DefaultOptions); err != nil {
		return nil, err
	}
	return forCapture(func(uint16) ([]bpf.RawInstruction, error) { return prog, nil }), nil
}

func forCapture(source func(linkType uint16) ([]bpf.RawInstruction, error)) *capture.Filter {
	var mu sync.Mutex
	cache := map[uint16]*Program{}
	get := func(lt uint16) (*Program, error) {
		mu.Lock()
		defer mu.Unlock()
		if p, ok := cache[lt]; ok {
			return p, nil
		}
		raw, err := source(lt)
		if err != nil {
			return nil, err
		}
		p, err := Translate(raw, DefaultOptions)
		if err != nil {
			return nil, err
		}
		cache[lt] = p
		return p, nil
	}
	return &capture.Filter{
		Insns: func(lt uint16) (asm.Instructions, error) {
			p, err := get(lt)
			if err != nil {
				return nil, err
			}
			return p.Insns, nil
		},
		Window: func(lt uint16) (uint32, error) {
			p, err := get(lt)
			if err != nil {
				return 0, err
			}
			return p.Need, nil
		},
	}
}

// CaptureFilter hands this translated program to the capture package as
// is, for every link type (tests and tools that translate with their own
// Options).
func (p *Program) CaptureFilter() *capture.Filter {
	return &capture.Filter{
		Insns:  func(uint16) (asm.Instructions, error) { return p.Insns, nil },
		Window: func(uint16) (uint32, error) { return p.Need, nil },
	}
}
