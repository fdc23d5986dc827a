package pcapio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRoundTrip writes arbitrary packets and checks they read back as
// written. Run here only on its seeds, by go test.
func FuzzRoundTrip(f *testing.F) {
	f.Add(false, "eth0", uint32(128), int64(baseTime), uint8(0b100100), uint16(0), frame(300, 1))
	f.Add(true, "", uint32(0), int64(0), uint8(0xff), uint16(7), []byte{})
	f.Add(true, "x", uint32(3), int64(maxPcapTimestamp), uint8(1), uint16(64), []byte{5, 1, 2, 3, 4, 5, 0, 200})
	f.Add(false, "a\x00", uint32(1), int64(-1), uint8(2), uint16(1), []byte{1, 0, 3})
	f.Fuzz(func(t *testing.T, pcap bool, name string, snap uint32, ts int64, dirs uint8, bufSize uint16, data []byte) {
		format := FormatPCAPNG
		if pcap {
			format = FormatPCAP
		}
		// Only valid timestamps; invalid ones have their own tests.
		if ts < 0 {
			ts = -(ts + 1)
		}
		if pcap {
			ts %= maxPcapTimestamp - 1000
		} else {
			ts = min(ts, 1<<62)
		}
		fx := fixture{
			opts: WriterOptions{
				Format:      format,
				Application: name + "-app",
				Interfaces:  []Interface{{Name: name, LinkType: 1, SnapLen: snap}, {Name: "b", Description: name, LinkType: 1}},
				BufferSize:  int(bufSize),
			},
		}
		// data is a sequence of (length byte, bytes) packets.
		for i := 0; len(data) > 0; i++ {
			n := min(int(data[0]), len(data)-1)
			fx.packets = append(fx.packets, Packet{
				Timestamp: ts + int64(i),
				WireLen:   uint32(n) + uint32(dirs)*uint32(i%3),
				Interface: i % 2,
				Direction: Direction((int(dirs) >> (i % 7)) % 3),
				Data:      data[1 : 1+n],
			})
			data = data[1+n:]
		}
		for i := range fx.opts.Interfaces {
			fx.stats = append(fx.stats, InterfaceStats{Timestamp: ts, Received: uint64(dirs), Dropped: uint64(i), Accepted: uint64(snap)})
		}
		got := mustReadAll(t, mustWrite(t, fx))
		want := expected(fx)
		// The reader drops the NUL terminators some writers add.
		for i := range want.Interfaces {
			want.Interfaces[i].Name = strings.TrimRight(want.Interfaces[i].Name, "\x00")
			want.Interfaces[i].Description = strings.TrimRight(want.Interfaces[i].Description, "\x00")
		}
		want.Application = strings.TrimRight(want.Application, "\x00")
		if diff := diffResult(want, got); diff != "" {
			t.Errorf("reader(writer(x)) (-want +got):\n%s", diff)
		}
	})
}

// FuzzReader checks the reader returns an error, never panics, on any
// input, and that its errors are the documented ones. Run here only on
// its seeds, by go test.
func FuzzReader(f *testing.F) {
	for _, name := range []string{"two-interfaces.pcapng", "one-interface.pcap"} {
		b, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-5])
	}
	le, be := binary.LittleEndian, binary.BigEndian
	f.Add([]byte{})
	f.Add((&builder{order: be}).shb("x").idb(1, 8, nil).epb(0, 1, 2, []byte{1, 2}, nil).b)
	f.Add((&builder{order: le}).shb("").idb(1, 0, (&builder{order: le}).opt(optIfTsresol, []byte{0xbf}).b).epb(0, ^uint64(0), 1, []byte{1}, nil).b)
	f.Add((&builder{order: le}).shb("").u32(blockEPB, maxBlock, 0).b)
	f.Add((&builder{order: be}).u32(magicPcapMicro).u16(2, 4).u32(0, 0, 0, 1).u32(0xffffffff, 0xffffffff, 1, 0).raw(1).b)
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewReader(bytes.NewReader(in))
		for err == nil {
			var p Packet
			if err = r.Next(&p); err == nil {
				if p.Interface < 0 || p.Interface >= len(r.Interfaces()) {
					t.Fatalf("packet of interface %d, reader has %d", p.Interface, len(r.Interfaces()))
				}
			}
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFormat) {
			t.Fatalf("error %v wraps neither io.EOF, io.ErrUnexpectedEOF nor ErrFormat", err)
		}
	})
}
