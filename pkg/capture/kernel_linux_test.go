package capture

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

func TestRequireKernel(t *testing.T) {
	modern := Kernel{Release: "6.18.0", RingBuf: true, XDP: true}
	old := Kernel{Release: "5.10.0-35-amd64", RingBuf: true}
	ancient := Kernel{Release: "5.4.0"}
	tests := []struct {
		name     string
		k        Kernel
		cfg      Config
		auto     bool
		wantHook Hook
		wantErr  string
	}{
		{name: "xdp on 6.18", k: modern, cfg: Config{Hook: HookXDP}, wantHook: HookXDP},
		{name: "auto on 6.18", k: modern, cfg: Config{Hook: HookXDP}, auto: true, wantHook: HookXDP},
		{name: "auto on 5.10 uses tc", k: old, cfg: Config{Hook: HookXDP}, auto: true, wantHook: HookTC},
		{name: "monitor auto on 5.10 uses tc", k: old, cfg: Config{Hook: HookXDP, MonitorPort: true}, auto: true, wantHook: HookTC},
		{name: "tc on 5.10", k: old, cfg: Config{Hook: HookTC}, wantHook: HookTC},
		{name: "xdp on 5.10", k: old, cfg: Config{Hook: HookXDP},
			wantErr: "kernel too old: kernel 5.10.0-35-amd64 lacks bpf_xdp_load_bytes (5.18), which the XDP hook needs; use --hook tc (ringtap needs ≥ 5.18 for XDP, ≥ 5.8 for TC)"},
		{name: "xdp mode on 5.10", k: old, cfg: Config{Hook: HookXDP, XDPMode: XDPGeneric}, auto: true,
			wantErr: "kernel too old: kernel 5.10.0-35-amd64 lacks bpf_xdp_load_bytes (5.18), which --xdp-mode generic needs"},
		{name: "no ringbuf", k: ancient, cfg: Config{Hook: HookTC},
			wantErr: "kernel too old: kernel 5.4.0 lacks BPF ring buffers (5.8); ringtap needs ≥ 5.8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			err := requireKernel(tt.k, &cfg, tt.auto)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrKernel) {
					t.Fatalf("error %v, want %q (ErrKernel)", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Hook != tt.wantHook {
				t.Fatalf("hook %v, want %v", cfg.Hook, tt.wantHook)
			}
		})
	}
}

// TestVerifierRejectionIsNotPermission loads a program the verifier must
// reject (it reads an uninitialised register): the error says the
// verifier rejected it, names the kernel, shows the log's last lines, and
// is not reported as a missing privilege although the kernel says EACCES.
func TestVerifierRejectionIsNotPermission(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	if _, err := ProbeKernel(); err != nil {
		t.Fatal(err)
	}
	_, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Reg(asm.R0, asm.R5), asm.Return()},
	})
	if err == nil {
		t.Fatal("the verifier accepted a read of an uninitialised register")
	}
	got := permission(verifierError(err))
	if !errors.Is(got, ErrVerifier) || errors.Is(got, ErrPermission) {
		t.Fatalf("error %v: want ErrVerifier and not ErrPermission", got)
	}
	for _, want := range []string{"the kernel's verifier rejected the capture program on kernel " + kernelRelease(), "R5 !read_ok"} {
		if !strings.Contains(got.Error(), want) {
			t.Errorf("error %q does not contain %q", got, want)
		}
	}
}
