package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// mustOddRecords writes a pcap of the records that libpcap judges by more
// than their bytes: the corpus truncated at 100 bytes (len, less and
// greater see the original length), frames over 64 KiB (GRO and BIG TCP
// captures), and records shorter than an Ethernet header.
func mustOddRecords(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapio.NewWriter(f, pcapio.WriterOptions{Format: pcapio.FormatPCAP,
		Interfaces: []pcapio.Interface{{LinkType: 1, SnapLen: 262144}}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	put := func(data []byte, wire int) {
		n++
		if err := w.WritePacket(&pcapio.Packet{Timestamp: int64(n) * 1000, WireLen: uint32(wire), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	for _, fr := range trafficgen.Corpus() {
		put(fr.Data[:min(len(fr.Data), 100)], len(fr.Data))
	}
	for _, size := range []int{70000, 80000, 200000} {
		fr := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcPort: 53, DstPort: 1234, Size: 1514}))
		big := append(fr, make([]byte, size-len(fr))...)
		put(big, size)
		put(big[:1000], size)
	}
	for _, size := range []int{1, 6, 13} {
		put(trafficgen.Corpus()[0].Data[:size], size)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFilterTestOddRecords: `ringtap filter test` selects what
// `tcpdump -r FILE -w - EXPR` selects on truncated records, records over
// 64 KiB and records shorter than an Ethernet header, at both hooks.
func TestFilterTestOddRecords(t *testing.T) {
	for _, tool := range []string{"tcpdump", "tshark", "capinfos"} {
		if _, err := exec.LookPath(tool); err != nil {
			testbedtest.SkipOrFail(t, "%s not installed (make deps installs it)", tool)
		}
	}
	in := filepath.Join(t.TempDir(), "odd.pcap")
	total := mustOddRecords(t, in)
	exprs := []string{
		"len > 100", "less 200", "greater 1000", "len >= 80000", "udp", "not tcp",
		"ether[70000] = 0", "udp port 53", "ether[5] = 0", "ip[2:2] > 1000",
	}
	for _, hook := range []string{"xdp", "tc"} {
		for _, expr := range exprs {
			if hook == "tc" && expr == "ether[70000] = 0" {
				continue // a TC test run takes less than a page: TestFilterTestTooLargeForTC
			}
			t.Run(hook+"/"+expr, func(t *testing.T) {
				testbedtest.RequirePrivileged(t)
				dir := t.TempDir()
				got := filepath.Join(dir, "got.pcap")
				out, err := exec.Command(binPath, "filter", "test", "--hook", hook, "-r", in, "-w", got, expr).CombinedOutput()
				if err != nil {
					t.Fatalf("filter test: %v\n%s", err, out)
				}
				if strings.Contains(string(out), "not run") {
					t.Fatalf("filter test skipped records:\n%s", out)
				}
				want := filepath.Join(dir, "want.pcap")
				if out, err := exec.Command("tcpdump", "-r", in, "-w", want, expr).CombinedOutput(); err != nil {
					t.Fatalf("tcpdump: %v\n%s", err, out)
				}
				w, g := tsharkFields(t, want), tsharkFields(t, got)
				if g != w {
					t.Fatalf("ringtap's matches differ from tcpdump's:\nringtap:\n%s\ntcpdump:\n%s", g, w)
				}
				n := strings.Count(w, "\n")
				if !strings.Contains(string(out), fmt.Sprintf("%d of %d packets match", n, total)) {
					t.Fatalf("summary %q, want %d of %d", out, n, total)
				}
			})
		}
	}
}

// TestFilterTestTooLargeForTC: a record the kernel cannot run whole, with
// a filter that may read beyond what it can run, is reported as not run
// (with the reason), never judged on part of its bytes.
func TestFilterTestTooLargeForTC(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	in := filepath.Join(t.TempDir(), "odd.pcap")
	total := mustOddRecords(t, in)
	out, err := exec.Command(binPath, "filter", "test", "--hook", "tc", "-r", in, "ether[70000] = 0").CombinedOutput()
	if err != nil {
		t.Fatalf("filter test: %v\n%s", err, out)
	}
	for _, want := range []string{
		fmt.Sprintf("0 of %d packets match", total),
		"the filter may read 70001 bytes of this 70000-byte record, more than a test run takes",
		"3 packets were not run",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
}

// TestFilterTestNoMatchWritesEmptyFile: with -w and no match, a valid file
// without packets, as tcpdump writes.
func TestFilterTestNoMatchWritesEmptyFile(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "odd.pcap")
	mustOddRecords(t, in)
	got := filepath.Join(dir, "none.pcap")
	out, err := exec.Command(binPath, "filter", "test", "-r", in, "-w", got, "len > 250000").CombinedOutput()
	if err != nil {
		t.Fatalf("filter test: %v\n%s", err, out)
	}
	if c := capinfosCount(t, got); c != "0" {
		t.Fatalf("capinfos counted %s packets, want 0", c)
	}
}

func tsharkFields(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len").Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", path, err)
	}
	return string(out)
}
