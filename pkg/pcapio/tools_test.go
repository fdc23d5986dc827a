package pcapio

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// These tests check our files against Wireshark's and libpcap's readers,
// and read files Wireshark wrote.

// mustTool finds an external tool in PATH. Without it the test is
// skipped, unless running in CI (CI=true), where it fails.
func mustTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not in PATH: %v", name, err)
	}
	return path
}

// mustRun runs a tool and returns its standard output.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(mustTool(t, name), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

// mustWriteFile writes fx to a file in a temporary directory.
func mustWriteFile(t *testing.T, name string, fx fixture) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, mustWrite(t, fx), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// toolPacket is what the tools tell about a packet.
type toolPacket struct {
	WireLen, CapLen int
	Timestamp       int64
	Interface       int
	Direction       Direction
}

// parseEpoch parses seconds with up to 9 decimals into nanoseconds,
// exactly.
func parseEpoch(s string) (int64, error) {
	secs, frac, _ := strings.Cut(s, ".")
	if len(frac) > 9 {
		return 0, fmt.Errorf("parse time %q: more than 9 decimals", s)
	}
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse time %q: %w", s, err)
	}
	var ns int64
	if frac != "" {
		if ns, err = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64); err != nil {
			return 0, fmt.Errorf("parse time %q: %w", s, err)
		}
	}
	return sec*1e9 + ns, nil
}

// uniformFixture has two interfaces of one snap length: libpcap refuses
// pcapng files whose interfaces differ in snap length.
func uniformFixture() fixture {
	fx := pcapngFixture()
	fx.opts.Interfaces = []Interface{{Name: "veth0", LinkType: 1, SnapLen: 262144}, {Name: "veth1", LinkType: 1, SnapLen: 262144}}
	return fx
}

func TestTools(t *testing.T) {
	for _, tc := range []struct {
		file    string
		fx      fixture
		tcpdump bool
	}{
		// tcpdump (libpcap 1.10) cannot read it: "an interface has a
		// snapshot length 65535 different from the snapshot length of the
		// first interface".
		{"two-interfaces.pcapng", pcapngFixture(), false},
		{"uniform.pcapng", uniformFixture(), true},
		{"one-interface.pcap", pcapFixture(), true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := mustWriteFile(t, tc.file, tc.fx)
			want := expected(tc.fx)
			var wantTool []toolPacket
			for _, p := range want.Packets {
				wantTool = append(wantTool, toolPacket{int(p.WireLen), len(p.Data), p.Timestamp, p.Interface, p.Direction})
			}

			t.Run("capinfos", func(t *testing.T) {
				out := mustRun(t, "capinfos", "-M", "-c", path)
				m := regexp.MustCompile(`Number of packets:\s+(\d+)`).FindStringSubmatch(out)
				if m == nil || m[1] != strconv.Itoa(len(want.Packets)) {
					t.Errorf("capinfos -M -c: want %d packets, got:\n%s", len(want.Packets), out)
				}
				out = mustRun(t, "capinfos", "-M", path)
				if got, want := regexp.MustCompile(`Number of interfaces in file: (\d+)`).FindStringSubmatch(out), strconv.Itoa(len(want.Interfaces)); got == nil || got[1] != want {
					t.Errorf("capinfos: want %s interfaces, got:\n%s", want, out)
				}
				if got, want := strings.Count(out, "Number of stat entries = 1"), len(want.Stats); got != want {
					t.Errorf("capinfos: %d interfaces with statistics, want %d:\n%s", got, want, out)
				}
			})

			t.Run("tshark", func(t *testing.T) {
				out := mustRun(t, "tshark", "-r", path, "-T", "fields", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.time_epoch",
					"-e", "frame.interface_id", "-e", "frame.packet_flags_direction")
				var got []toolPacket
				for line := range strings.Lines(out) {
					f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
					if len(f) != 5 {
						t.Fatalf("tshark line %q: want 5 fields", line)
					}
					var p toolPacket
					var err error
					p.WireLen, _ = strconv.Atoi(f[0])
					p.CapLen, _ = strconv.Atoi(f[1])
					if p.Timestamp, err = parseEpoch(f[2]); err != nil {
						t.Fatal(err)
					}
					if f[3] != "" {
						p.Interface, _ = strconv.Atoi(f[3])
					}
					if f[4] != "" {
						d, err := strconv.ParseUint(f[4], 0, 32)
						if err != nil {
							t.Fatalf("tshark direction %q: %v", f[4], err)
						}
						p.Direction = Direction(d)
					}
					got = append(got, p)
				}
				if diff := cmp.Diff(wantTool, got); diff != "" {
					t.Errorf("tshark -T fields (-want +got):\n%s", diff)
				}
			})

			if !tc.tcpdump {
				return
			}
			t.Run("tcpdump", func(t *testing.T) {
				out := mustRun(t, "tcpdump", "-r", path, "-nn", "-tt", "--time-stamp-precision=nano")
				var got, wantLines []string
				for line := range strings.Lines(out) {
					if line[0] >= '0' && line[0] <= '9' { // not a hex dump line
						ts, _, _ := strings.Cut(line, " ")
						_, length, _ := strings.Cut(line, ", length ")
						length, _, _ = strings.Cut(length, ":")
						got = append(got, ts+" length "+length)
					}
				}
				for _, p := range wantTool {
					wantLines = append(wantLines, fmt.Sprintf("%d.%09d length %d", p.Timestamp/1e9, p.Timestamp%1e9, p.WireLen))
				}
				if diff := cmp.Diff(wantLines, got); diff != "" {
					t.Errorf("tcpdump -r (-want +got):\n%s\n%s", diff, out)
				}
			})
		})
	}
}

// TestReadEditcapOutput reads files Wireshark's editcap converted from
// ours.
func TestReadEditcapOutput(t *testing.T) {
	truncateToMicro := func(res readResult) readResult {
		for i := range res.Packets {
			res.Packets[i].Timestamp -= res.Packets[i].Timestamp % 1000
		}
		return res
	}
	for _, tc := range []struct {
		name   string
		fx     fixture
		format string // editcap -F
		want   func(readResult) readResult
	}{
		{"pcap to pcapng", pcapFixture(), "pcapng", func(res readResult) readResult {
			res.Format = FormatPCAPNG
			return res
		}},
		{"pcapng to pcapng", pcapngFixture(), "pcapng", nil},
		{"pcapng to microsecond pcap", pcapngFixture(), "pcap", func(res readResult) readResult {
			res = truncateToMicro(expected(fixture{opts: WriterOptions{Format: FormatPCAP, Interfaces: res.Interfaces}, packets: res.Packets}))
			res.Interfaces = nil // editcap picks the snap length
			return res
		}},
		{"pcapng to nanosecond pcap", uniformFixture(), "nsecpcap", func(res readResult) readResult {
			return expected(fixture{opts: WriterOptions{Format: FormatPCAP, Interfaces: res.Interfaces}, packets: res.Packets})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := mustWriteFile(t, "in", tc.fx)
			out := filepath.Join(filepath.Dir(in), "out")
			mustRun(t, "editcap", "-F", tc.format, in, out)
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got := mustReadAll(t, b)
			want := expected(tc.fx)
			if tc.want != nil {
				want = tc.want(want)
			}
			// editcap names itself, and Wireshark 4.0 drops statistics
			// blocks; when it keeps them they must match.
			t.Logf("application %q, statistics %v", got.Application, got.Stats)
			want.Application = got.Application
			if len(got.Stats) == 0 {
				want.Stats = got.Stats
			}
			if want.Interfaces == nil {
				want.Interfaces = got.Interfaces
			}
			if diff := diffResult(want, got); diff != "" {
				t.Errorf("read editcap -F %s output (-want +got):\n%s", tc.format, diff)
			}
		})
	}
}
