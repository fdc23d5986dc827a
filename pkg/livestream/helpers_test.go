package livestream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// testIfaces are the interfaces of the test streams.
var testIfaces = []pcapio.Interface{
	{Name: "eth1", Description: "uplink", LinkType: 1},
	{Name: "eth2", LinkType: 1, SnapLen: 9000},
}

// testPacket is the i-th packet of a test stream: its size, interface
// and direction vary with i.
func testPacket(i int) pcapio.Packet {
	data := make([]byte, 60+i%300)
	for j := range data {
		data[j] = byte(i + j)
	}
	return pcapio.Packet{
		Timestamp: 1_700_000_000_000_000_000 + int64(i)*1000,
		WireLen:   uint32(len(data) + i%3),
		Interface: i % len(testIfaces),
		Direction: pcapio.Direction(i % 3),
		Data:      data,
	}
}

// testPackets are packets from..to-1.
func testPackets(from, to int) []pcapio.Packet {
	var ps []pcapio.Packet
	for i := from; i < to; i++ {
		ps = append(ps, testPacket(i))
	}
	return ps
}

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

// stream is what a pcapng stream holds, as read back.
type stream struct {
	packets []pcapio.Packet
	ifaces  []pcapio.Interface
	// stats are the statistics blocks in order.
	stats []stat
	// pcapioStats is pcapio.Reader's Stats at the end.
	pcapioStats map[int]pcapio.InterfaceStats
}

// stat is one interface statistics block.
type stat struct {
	Section  int
	Iface    uint32
	OSDrop   uint64
	HasDrop  bool
	Comments []string
}

// lastStats returns the last statistics block of each interface of the
// last section.
func (s stream) lastStats() map[uint32]stat {
	m := map[uint32]stat{}
	last := 0
	for _, st := range s.stats {
		last = max(last, st.Section)
	}
	for _, st := range s.stats {
		if st.Section == last {
			m[st.Iface] = st
		}
	}
	return m
}

// mustRead reads a pcapng stream: its packets with pcapio.Reader, its
// statistics blocks with a decoder of its own (pcapio does not decode
// isb_osdrop).
func mustRead(t *testing.T, data []byte) stream {
	t.Helper()
	r, err := pcapio.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("pcapio.NewReader: %v", err)
	}
	var s stream
	for {
		var p pcapio.Packet
		err := r.Next(&p)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("pcapio.Reader.Next after %d packets: %v", len(s.packets), err)
		}
		p.Data = bytes.Clone(p.Data)
		s.packets = append(s.packets, p)
	}
	s.ifaces = append(s.ifaces, r.Interfaces()...)
	s.pcapioStats = r.Stats()

	br := newBlockReader(bytes.NewReader(data))
	section := -1
	for {
		b, err := br.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read blocks: %v", err)
		}
		switch b.typ {
		case blockSHB:
			section++
		case blockISB:
			s.stats = append(s.stats, decodeStat(t, b, section))
		}
	}
	return s
}

// decodeStat decodes an interface statistics block.
func decodeStat(t *testing.T, b block, section int) stat {
	t.Helper()
	o := b.order()
	st := stat{Section: section, Iface: o.Uint32(b.data[8:])}
	opts := b.data[20 : len(b.data)-4]
	for len(opts) >= 4 {
		code, n := o.Uint16(opts), int(o.Uint16(opts[2:]))
		if code == 0 {
			break
		}
		val := opts[4 : 4+n]
		switch code {
		case 1:
			st.Comments = append(st.Comments, string(val))
		case 7:
			if n != 8 {
				t.Fatalf("isb_osdrop of %d bytes", n)
			}
			st.OSDrop, st.HasDrop = o.Uint64(val), true
		}
		opts = opts[4+pad4(n):]
	}
	return st
}

// gopacketStatComments reads the comments of the statistics blocks with
// gopacket's pcapng reader, another implementation than ours.
func gopacketStatComments(t *testing.T, data []byte) []string {
	t.Helper()
	var comments []string
	r, err := pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.NgReaderOptions{
		WantMixedLinkType: true,
		StatisticsCallback: func(_ int, s pcapgo.NgInterfaceStatistics) {
			if s.Comment != "" {
				comments = append(comments, s.Comment)
			}
		},
	})
	if err != nil {
		t.Fatalf("pcapgo.NewNgReader: %v", err)
	}
	for {
		_, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return comments
		}
		if err != nil {
			t.Fatalf("pcapgo: %v", err)
		}
	}
}

var (
	capinfosPackets = regexp.MustCompile(`(?m)^Number of packets:\s+(\d+)\s*$`)
	capinfosStats   = regexp.MustCompile(`(?m)Number of stat entries = (\d+)`)
)

// mustCheckTools checks the stream with Wireshark's readers: tshark and
// capinfos count wantPackets packets, and capinfos counts wantStats
// statistics blocks in all.
func mustCheckTools(t *testing.T, data []byte, wantPackets, wantStats int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "live.pcapng")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "tshark", "-r", path, "-T", "fields", "-e", "frame.number")
	if got := strings.Count(out, "\n"); got != wantPackets {
		t.Errorf("tshark -r read %d packets, want %d", got, wantPackets)
	}
	info := mustRun(t, "capinfos", "-M", path)
	m := capinfosPackets.FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("capinfos printed no packet count:\n%s", info)
	}
	if got, _ := strconv.Atoi(m[1]); got != wantPackets {
		t.Errorf("capinfos counts %d packets, want %d", got, wantPackets)
	}
	stats := 0
	for _, m := range capinfosStats.FindAllStringSubmatch(info, -1) {
		n, _ := strconv.Atoi(m[1])
		stats += n
	}
	if stats != wantStats {
		t.Errorf("capinfos counts %d statistics blocks, want %d:\n%s", stats, wantStats, info)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// gateWriter is a slow reader: each Write waits until the gate opens.
type gateWriter struct {
	gate chan struct{}
	buf  syncBuffer
}

func newGateWriter() *gateWriter { return &gateWriter{gate: make(chan struct{})} }

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.gate
	return g.buf.Write(p)
}

func (g *gateWriter) open() { close(g.gate) }

// mustWriteStream encodes packets into a pcapng stream with pcapio.
func mustWriteStream(t *testing.T, ifaces []pcapio.Interface, packets []pcapio.Packet) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapio.NewWriter(&b, pcapio.WriterOptions{Format: pcapio.FormatPCAPNG, Application: "test", Interfaces: ifaces})
	if err != nil {
		t.Fatal(err)
	}
	for i := range packets {
		if err := w.WritePacket(&packets[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// mustReturn waits for an error from c, failing after a minute: the
// call it stands for is stuck.
func mustReturn(t *testing.T, what string, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// goErr runs f in a goroutine and returns the channel of its error.
func goErr(f func() error) <-chan error {
	c := make(chan error, 1)
	go func() { c <- f() }()
	return c
}

// mustSamePackets compares packets, quickly when they are equal (cmp
// with the race detector takes seconds for thousands of packets).
func mustSamePackets(t *testing.T, what string, want, got []pcapio.Packet) {
	t.Helper()
	if len(want) == len(got) {
		same := true
		for i := range want {
			same = same && samePacket(want[i], got[i])
		}
		if same {
			return
		}
	}
	t.Errorf("%s (-want +got):\n%s", what, cmp.Diff(want, got))
}

// le is the byte order of pcapio's streams.
var le = binary.LittleEndian
