package pcapio

import (
	"bytes"
	"errors"
	"io"
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
