package filter_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"

	"github.com/ringtap/ringtap/pkg/filter"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		{"tcp port banana", `compile filter "tcp port banana"`},
		{"tcp port banana", "banana"},
		{"host", "syntax error"},
		{"ip broadcast", "netmask not known"},
		{"vlan 5000", "VLAN tag 5000 greater than maximum"},
	}
	for _, tt := range tests {
		t.Run(tt.expr+"/"+tt.want, func(t *testing.T) {
			_, err := filter.Compile(tt.expr, 1)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLiveOnlyExpressions(t *testing.T) {
	for _, expr := range []string{"inbound", "outbound", "ifindex 3"} {
		_, err := filter.Compile(expr, 1)
		if err == nil {
			continue // some libpcap builds refuse these outright; both are fine
		}
		if !errors.Is(err, filter.ErrLiveOnly) && !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%q: %v, want ErrLiveOnly or libpcap's refusal", expr, err)
		}
	}
}

func TestParseRawMatchesTcpdump(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed")
	}
	for _, expr := range []string{"udp port 53", "vlan 100 and tcp", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", "ip6 and icmp6"} {
		t.Run(expr, func(t *testing.T) {
			out, err := exec.Command("tcpdump", "-ddd", "-r", filter.FramesFile, expr).Output()
			if err != nil {
				t.Fatalf("tcpdump -ddd: %v", err)
			}
			got, err := filter.ParseRaw(string(out))
			if err != nil {
				t.Fatal(err)
			}
			want, err := filter.Compile(expr, 1)
			if err != nil {
				t.Fatal(err)
			}
			// tcpdump -r compiles with the file's snaplen, which only
			// shows in the accepting return value.
			for _, prog := range [][]bpf.RawInstruction{want, got} {
				for i := range prog {
					if prog[i].Op == 0x06 && prog[i].K != 0 {
						prog[i].K = 1
					}
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-libpcap +tcpdump -ddd):\n%s", diff)
			}
		})
	}
}

func TestParseRawErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"empty", "", "empty program"},
		{"count", "x\n6 0 0 1", "is not an instruction count"},
		{"mismatch", "2\n6 0 0 1", "says 2 instructions, 1 follow"},
		{"fields", "1\n6 0 0", "line 2: want 4 decimal numbers"},
		{"range", "1\n6 0 300 1", "is not a 8-bit decimal number"},
		{"no ret", "1\n0 0 0 1", "not a return"},
		{"commas", "2,40 0 0 12,6 0 0 0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := filter.ParseRaw(tt.text)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ret := bpf.RawInstruction{Op: 0x06, K: 1}
	tests := []struct {
		name string
		prog []bpf.RawInstruction
		want string
	}{
		{"ok", []bpf.RawInstruction{ret}, ""},
		{"empty", nil, "1 to 4096"},
		{"div by zero", []bpf.RawInstruction{{Op: 0x34, K: 0}, ret}, "division by zero"},
		{"mod by zero", []bpf.RawInstruction{{Op: 0x94, K: 0}, ret}, "division by zero"},
		{"shift 32", []bpf.RawInstruction{{Op: 0x64, K: 32}, ret}, "shift by 32"},
		{"mem index", []bpf.RawInstruction{{Op: 0x02, K: 16}, ret}, "scratch memory index"},
		{"jump out", []bpf.RawInstruction{{Op: 0x15, Jt: 5}, ret}, "jump past the last instruction"},
		{"backward", []bpf.RawInstruction{{Op: 0x05, K: 0xffffffff}, ret}, "backward jump"},
		{"unknown", []bpf.RawInstruction{{Op: 0xff}, ret}, "unknown"},
		{"extension", []bpf.RawInstruction{{Op: 0x20, K: 0xfffff004}, ret}, ""},
		{"last not ret", []bpf.RawInstruction{{Op: 0x00, K: 1}}, "not a return"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := filter.Validate(tt.prog)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	// Ancillary loads validate (the kernel allows them) but do not translate.
	_, err := filter.Translate([]bpf.RawInstruction{{Op: 0x20, K: 0xfffff004}, ret}, filter.DefaultOptions)
	if !errors.Is(err, filter.ErrLiveOnly) {
		t.Fatalf("ancillary load: %v, want ErrLiveOnly", err)
	}
}

func TestNeed(t *testing.T) {
	tests := []struct {
		expr string
		want uint32
	}{
		{"udp", 55},             // IPv4 protocol, or IPv6 next header and a fragment header's
		{"host 198.18.0.1", 42}, // ARP sender/target address at 28 and 38
		{"ether broadcast", 6},
		{"udp port 53", 14 + 60 + 4},
		{"tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", 14 + 60 + 60 + 4},
		{"ether[len - 1] = 0", filter.DefaultWindow},
		{"len > 100", 0},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			raw, err := filter.Compile(tt.expr, 1)
			if err != nil {
				t.Fatal(err)
			}
			p, err := filter.Translate(raw, filter.DefaultOptions)
			if err != nil {
				t.Fatal(err)
			}
			if p.Need != tt.want {
				t.Errorf("Need = %d, want %d\n%s", p.Need, tt.want, filter.Explain(p))
			}
		})
	}
}

func TestMergingSavesChecks(t *testing.T) {
	raw, err := filter.Compile("udp port 53", 1)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := filter.Translate(raw, filter.DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	perLoad, err := filter.Translate(raw, filter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if merged.Checks >= perLoad.Checks {
		t.Fatalf("merged %d checks, per load %d", merged.Checks, perLoad.Checks)
	}
}

func TestExplain(t *testing.T) {
	raw, err := filter.Compile("ip", 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := filter.Translate(raw, filter.DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	out := filter.Explain(p)
	for _, want := range []string{"(000) ldh      [12]", "(001) jeq      #0x800           jt 2\tjf 3", "(002) ret      #262144", "eBPF, ", "Exit"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
}
