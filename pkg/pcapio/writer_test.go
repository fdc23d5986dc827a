package pcapio

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mustHex decodes hex written with spaces, newlines and // comments.
func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.Lines(s) {
		line, _, _ = strings.Cut(line, "//")
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// TestWriterBytes spells out every byte of small files.
func TestWriterBytes(t *testing.T) {
	pkt := Packet{Timestamp: 0x0102030405060708, WireLen: 7, Data: []byte{0xa, 0xb, 0xc, 0xd, 0xe}}
	stats := InterfaceStats{Timestamp: 0x10, Received: 3, Dropped: 2, Accepted: 1}
	for _, tc := range []struct {
		name string
		opts WriterOptions
		dir  Direction
		want string
	}{
		{
			name: "pcapng",
			dir:  DirOutbound,
			opts: WriterOptions{Application: "ab", Interfaces: []Interface{{Name: "e", Description: "xyz", LinkType: 1, SnapLen: 0}}},
			want: `
				0a0d0d0a 28000000 4d3c2b1a 0100 0000 ffffffff ffffffff // SHB, 40 bytes, version 1.0, length -1
				0400 0200 61620000                                     // shb_userappl "ab", 2 bytes padding
				00000000 28000000                                      // opt_endofopt, length again
				01000000 30000000 0100 0000 00000000                   // IDB, 48 bytes, Ethernet, snaplen 0
				0200 0100 65000000                                     // if_name "e"
				0300 0300 78797a00                                     // if_description "xyz"
				0900 0100 09000000                                     // if_tsresol 9
				00000000 30000000
				06000000 34000000 00000000 04030201 08070605           // EPB, 52 bytes, interface 0, timestamp high, low
				05000000 07000000 0a0b0c0d 0e000000                    // captured 5, wire 7, data padded
				0200 0400 02000000 00000000                            // epb_flags outbound, opt_endofopt
				34000000
				05000000 40000000 00000000 00000000 10000000           // ISB, 64 bytes, interface 0, timestamp
				0400 0800 03000000 00000000                            // isb_ifrecv
				0500 0800 02000000 00000000                            // isb_ifdrop
				0600 0800 01000000 00000000                            // isb_filteraccept
				00000000 40000000`,
		},
		{
			name: "pcapng snaplen cuts data, no direction, no names",
			opts: WriterOptions{Interfaces: []Interface{{LinkType: 0x71, SnapLen: 4}}},
			want: `
				0a0d0d0a 20000000 4d3c2b1a 0100 0000 ffffffff ffffffff 00000000 20000000
				01000000 20000000 7100 0000 04000000 0900 0100 09000000 00000000 20000000
				06000000 24000000 00000000 04030201 08070605 04000000 07000000 0a0b0c0d 24000000
				05000000 40000000 00000000 00000000 10000000
				0400 0800 03000000 00000000 0500 0800 02000000 00000000 0600 0800 01000000 00000000
				00000000 40000000`,
		},
		{
			name: "pcap",
			opts: WriterOptions{Format: FormatPCAP, Interfaces: []Interface{{Name: "ignored", LinkType: 1, SnapLen: 100}, {LinkType: 1, SnapLen: 200}}},
			want: `
				4d3cb2a1 0200 0400 00000000 00000000 c8000000 01000000  // nanosecond magic, 2.4, snaplen 200, Ethernet
				01020304 05060708 05000000 07000000 0a0b0c0d0e          // record: seconds, nanoseconds, 5 of 7 bytes`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pkt
			p.Direction = tc.dir
			if tc.opts.Format == FormatPCAP {
				// 0x0102030405060708 ns = 0x0403_0201 s + 0x0807_0605 ns
				p.Timestamp = 0x04030201*1e9 + 0x08070605
			}
			got := mustWrite(t, fixture{opts: tc.opts, packets: []Packet{p}, stats: []InterfaceStats{stats}})
			if diff := cmp.Diff(hex.Dump(mustHex(t, tc.want)), hex.Dump(got)); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewWriterErrors(t *testing.T) {
	eth := Interface{LinkType: 1}
	for _, tc := range []struct {
		name string
		out  io.Writer
		opts WriterOptions
		want string
	}{
		{"no interfaces", io.Discard, WriterOptions{}, "no interfaces"},
		{"pcap with two link types", io.Discard, WriterOptions{Format: FormatPCAP, Interfaces: []Interface{eth, eth, {LinkType: 113}}}, "interface 2 has 113"},
		{"unknown format", io.Discard, WriterOptions{Format: 9, Interfaces: []Interface{eth}}, "unknown format"},
		{"long application", io.Discard, WriterOptions{Application: strings.Repeat("a", 1<<16), Interfaces: []Interface{eth}}, "too long"},
		{"long interface name", io.Discard, WriterOptions{Interfaces: []Interface{eth, {Name: strings.Repeat("a", 1<<16)}}}, "interface 1"},
		{"nil writer", nil, WriterOptions{Interfaces: []Interface{eth}}, "nil io.Writer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewWriter(tc.out, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewWriter error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestWritePacketErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format Format
		p      Packet
		want   string
	}{
		{"interface out of range", FormatPCAPNG, Packet{Interface: 2}, "interface 2 out of range"},
		{"negative interface", FormatPCAP, Packet{Interface: -1}, "interface -1 out of range"},
		{"negative timestamp", FormatPCAPNG, Packet{Timestamp: -1}, "negative timestamp"},
		{"pcap after 2106", FormatPCAP, Packet{Timestamp: maxPcapTimestamp + 1}, "year 2106"},
		{"invalid direction", FormatPCAPNG, Packet{Direction: 3}, "invalid direction 3"},
		{"too large", FormatPCAPNG, Packet{Interface: 1, Data: make([]byte, maxPacket+1)}, "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, WriterOptions{Format: tc.format, Interfaces: []Interface{{LinkType: 1, SnapLen: 65535}, {LinkType: 1}}})
			if err != nil {
				t.Fatal(err)
			}
			err = w.WritePacket(&tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WritePacket error = %v, want one containing %q", err, tc.want)
			}
			if w.Packets() != 0 {
				t.Errorf("Packets() = %d after a refused packet", w.Packets())
			}
			// A refused packet leaves nothing half-written.
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if res := mustReadAll(t, buf.Bytes()); len(res.Packets) != 0 {
				t.Errorf("read %d packets, want none", len(res.Packets))
			}
		})
	}
	w, err := NewWriter(io.Discard, WriterOptions{Interfaces: []Interface{{LinkType: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteInterfaceStats(1, InterfaceStats{}); err == nil {
		t.Error("WriteInterfaceStats for an unknown interface succeeded")
	}
	if err := w.WriteInterfaceStats(0, InterfaceStats{Timestamp: -5}); err == nil {
		t.Error("WriteInterfaceStats with a negative timestamp succeeded")
	}
}

// TestWritePacketDoesNotAllocate is the hot path's promise, flushes
// included.
func TestWritePacketDoesNotAllocate(t *testing.T) {
	for _, format := range []Format{FormatPCAPNG, FormatPCAP} {
		for _, dir := range []Direction{DirUnknown, DirInbound, DirOutbound} {
			t.Run(format.String()+"/"+dir.String(), func(t *testing.T) {
				w, err := NewWriter(io.Discard, WriterOptions{Format: format, Interfaces: twoInterfaces[1:], BufferSize: 4096})
				if err != nil {
					t.Fatal(err)
				}
				p := &Packet{Timestamp: baseTime, WireLen: 1514, Direction: dir, Data: frame(1001, 1)}
				allocs := testing.AllocsPerRun(1000, func() {
					p.Timestamp++
					if err := w.WritePacket(p); err != nil {
						t.Fatal(err)
					}
				})
				if allocs != 0 {
					t.Errorf("WritePacket: %v allocations per packet, want 0", allocs)
				}
				allocs = testing.AllocsPerRun(100, func() {
					if err := w.WriteInterfaceStats(0, InterfaceStats{Timestamp: baseTime, Received: 1}); err != nil {
						t.Fatal(err)
					}
				})
				if allocs != 0 {
					t.Errorf("WriteInterfaceStats: %v allocations, want 0", allocs)
				}
			})
		}
	}
}

// TestLargePacketSmallBuffer writes packets larger than the buffer.
func TestLargePacketSmallBuffer(t *testing.T) {
	for _, format := range []Format{FormatPCAPNG, FormatPCAP} {
		t.Run(format.String(), func(t *testing.T) {
			fx := fixture{
				opts: WriterOptions{Format: format, Interfaces: []Interface{{Name: "x", LinkType: 1}}, BufferSize: 16},
				packets: []Packet{
					{Timestamp: 1, Data: frame(9000, 1), Direction: DirInbound},
					{Timestamp: 2, Data: frame(3, 2)},
					{Timestamp: 3, Data: frame(70000, 3)},
				},
			}
			if diff := diffResult(expected(fx), mustReadAll(t, mustWrite(t, fx))); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWrittenAndPackets follows the counters through flushes and sections.
func TestWrittenAndPackets(t *testing.T) {
	for _, format := range []Format{FormatPCAPNG, FormatPCAP} {
		t.Run(format.String(), func(t *testing.T) {
			var first, second bytes.Buffer
			w, err := NewWriter(&first, WriterOptions{Format: format, Application: "a", Interfaces: twoInterfaces[1:], BufferSize: 100})
			if err != nil {
				t.Fatal(err)
			}
			header := w.Written()
			if header == 0 || w.Packets() != 0 {
				t.Fatalf("after NewWriter: Written() = %d, Packets() = %d", header, w.Packets())
			}
			p := &Packet{Timestamp: baseTime, Data: frame(61, 1)}
			for i := range 10 {
				if err := w.WritePacket(p); err != nil {
					t.Fatal(err)
				}
				if got := w.Packets(); got != uint64(i+1) {
					t.Fatalf("Packets() = %d, want %d", got, i+1)
				}
			}
			perPacket := int64(16 + 61)
			if format == FormatPCAPNG {
				perPacket = 32 + 64
			}
			if got, want := w.Written(), header+10*perPacket; got != want {
				t.Errorf("Written() = %d, want %d", got, want)
			}
			if first.Len() == 0 {
				t.Errorf("nothing flushed with a 100-byte buffer")
			}
			if err := w.StartSection(&second); err != nil {
				t.Fatal(err)
			}
			if got := int64(first.Len()); got != header+10*perPacket {
				t.Errorf("first section has %d bytes, want %d", got, header+10*perPacket)
			}
			if w.Written() != header || w.Packets() != 0 {
				t.Errorf("after StartSection: Written() = %d, Packets() = %d, want %d, 0", w.Written(), w.Packets(), header)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if int64(second.Len()) != header {
				t.Errorf("second section has %d bytes, want the %d of the header", second.Len(), header)
			}
		})
	}
}

// failWriter fails every write after the first ok ones.
type failWriter struct {
	ok    int
	short bool // fail by writing less without an error
	got   bytes.Buffer
}

var errDiskFull = errors.New("disk full")

func (f *failWriter) Write(b []byte) (int, error) {
	if f.ok > 0 {
		f.ok--
		return f.got.Write(b)
	}
	if f.short {
		return len(b) / 2, nil
	}
	return 0, errDiskFull
}

// TestWriteErrorIsSticky checks errors of the underlying writer persist
// until StartSection moves to another one.
func TestWriteErrorIsSticky(t *testing.T) {
	for _, tc := range []struct {
		name  string
		short bool
		want  error
	}{
		{"error", false, errDiskFull},
		{"short write", true, io.ErrShortWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &failWriter{short: tc.short}
			w, err := NewWriter(out, WriterOptions{Interfaces: []Interface{{LinkType: 1}}, BufferSize: 64})
			if err != nil {
				t.Fatal(err)
			}
			p := &Packet{Data: frame(60, 1)}
			if err := w.WritePacket(p); !errors.Is(err, tc.want) {
				t.Fatalf("WritePacket error = %v, want %v", err, tc.want)
			}
			for name, err := range map[string]error{
				"WritePacket":         w.WritePacket(p),
				"WriteInterfaceStats": w.WriteInterfaceStats(0, InterfaceStats{}),
				"Flush":               w.Flush(),
				"Close":               w.Close(),
			} {
				if !errors.Is(err, tc.want) {
					t.Errorf("%s after a failure: error = %v, want %v", name, err, tc.want)
				}
			}
			var next bytes.Buffer
			if err := w.StartSection(&next); err != nil {
				t.Fatalf("StartSection after a failure: %v", err)
			}
			mustWriteSection(t, w, fixture{packets: []Packet{*p}})
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := mustReadAll(t, next.Bytes()); len(got.Packets) != 1 {
				t.Errorf("new section holds %d packets, want 1", len(got.Packets))
			}
		})
	}
}

func TestInterfaceStatsIgnoredForPCAP(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{Format: FormatPCAP, Interfaces: []Interface{{LinkType: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	before := w.Written()
	if err := w.WriteInterfaceStats(0, InterfaceStats{Received: 1}); err != nil {
		t.Fatal(err)
	}
	if w.Written() != before {
		t.Errorf("Written() went from %d to %d", before, w.Written())
	}
}

// TestWriterCopiesInterfaces checks that changing the options afterwards
// changes nothing.
func TestWriterCopiesInterfaces(t *testing.T) {
	ifaces := []Interface{{Name: "a", LinkType: 1}}
	var first, second bytes.Buffer
	w, err := NewWriter(&first, WriterOptions{Interfaces: ifaces})
	if err != nil {
		t.Fatal(err)
	}
	ifaces[0].Name = "changed"
	if err := w.StartSection(&second); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Errorf("second section header differs from the first")
	}
}

// mustCheckBlocks walks a little-endian pcapng file checking the framing
// of every block: lengths a multiple of 4 and equal at both ends, and
// zero padding after packet data.
func mustCheckBlocks(t *testing.T, b []byte) (blocks int) {
	t.Helper()
	for off := 0; off < len(b); blocks++ {
		if len(b)-off < 12 {
			t.Fatalf("block at byte %d: %d bytes left", off, len(b)-off)
		}
		typ, n := le.Uint32(b[off:]), int(le.Uint32(b[off+4:]))
		if n%4 != 0 || n < 12 || off+n > len(b) {
			t.Fatalf("block at byte %d: bad length %d", off, n)
		}
		if tail := int(le.Uint32(b[off+n-4:])); tail != n {
			t.Fatalf("block at byte %d: length %d, trailing length %d", off, n, tail)
		}
		if typ == blockEPB {
			capLen := int(le.Uint32(b[off+20:]))
			if pad := b[off+28+capLen : off+28+pad4(capLen)]; !bytes.Equal(pad, make([]byte, len(pad))) {
				t.Errorf("block at byte %d: padding %x, want zeros", off, pad)
			}
		}
		off += n
	}
	return blocks
}

func TestBlockFraming(t *testing.T) {
	// A small buffer reused after flushes holds stale bytes where padding
	// goes.
	ones := bytes.Repeat([]byte{0xff}, 64)
	fx := fixture{opts: WriterOptions{Application: "odd", Interfaces: []Interface{{Name: "abcde", Description: "xy", LinkType: 1}}, BufferSize: 80}}
	for n := range 9 {
		fx.packets = append(fx.packets, Packet{Timestamp: 1, Data: ones[:60]}, Packet{Timestamp: 2, Direction: DirInbound, Data: frame(n, 1)})
	}
	fx.stats = []InterfaceStats{{Received: 1}}
	for name, fx := range map[string]fixture{"golden": pcapngFixture(), "stale buffer": fx} {
		t.Run(name, func(t *testing.T) {
			b := mustWrite(t, fx)
			// SHB, IDBs, EPBs, ISBs
			want := 1 + len(fx.opts.Interfaces) + len(fx.packets) + len(fx.stats)
			if got := mustCheckBlocks(t, b); got != want {
				t.Errorf("%d blocks, want %d", got, want)
			}
			if diff := diffResult(expected(fx), mustReadAll(t, b)); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}
