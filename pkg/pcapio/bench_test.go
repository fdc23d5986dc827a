package pcapio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func BenchmarkWritePacketPCAPNG(b *testing.B) { benchmarkWritePacket(b, FormatPCAPNG) }

func BenchmarkWritePacketPCAP(b *testing.B) { benchmarkWritePacket(b, FormatPCAP) }

func benchmarkWritePacket(b *testing.B, format Format) {
	for _, size := range []int{64, 1500} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			w, err := NewWriter(io.Discard, WriterOptions{Format: format, Interfaces: twoInterfaces[1:]})
			if err != nil {
				b.Fatal(err)
			}
			p := &Packet{Timestamp: baseTime, WireLen: uint32(size), Direction: DirInbound, Data: frame(size, 1)}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				p.Timestamp++
				if err := w.WritePacket(p); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkWriterBufferSize writes 64-byte packets as pcapng into a real
// file (the page cache, as a capture does) with different buffer sizes:
// how much larger writes save per packet.
func BenchmarkWriterBufferSize(b *testing.B) {
	for _, size := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "out.pcapng"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			w, err := NewWriter(f, WriterOptions{Format: FormatPCAPNG, Interfaces: twoInterfaces[1:], BufferSize: size})
			if err != nil {
				b.Fatal(err)
			}
			p := &Packet{Timestamp: baseTime, WireLen: 64, Direction: DirInbound, Data: frame(64, 1)}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				p.Timestamp++
				if err := w.WritePacket(p); err != nil {
					b.Fatal(err)
				}
				// Keep the file small: start over every 2^20 packets
				// (about 100 MB); every variant pays the same truncates.
				if n++; n%(1<<20) == 0 {
					if err := w.Flush(); err != nil {
						b.Fatal(err)
					}
					if err := f.Truncate(0); err != nil {
						b.Fatal(err)
					}
					if _, err := f.Seek(0, io.SeekStart); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkReader(b *testing.B) {
	for _, format := range []Format{FormatPCAPNG, FormatPCAP} {
		b.Run(format.String(), func(b *testing.B) {
			fx := fixture{opts: WriterOptions{Format: format, Interfaces: twoInterfaces[1:]}}
			for i := range 1000 {
				fx.packets = append(fx.packets, Packet{Timestamp: baseTime + int64(i), Direction: DirInbound, Data: frame(1500, 1)})
			}
			file := mustWrite(b, fx)
			b.SetBytes(int64(len(file)))
			b.ReportAllocs()
			var p Packet
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(file))
				if err != nil {
					b.Fatal(err)
				}
				for err == nil {
					err = r.Next(&p)
				}
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
			}
		})
	}
}
