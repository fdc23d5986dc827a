package storage

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// BenchmarkRecorder measures what the Recorder sustains, from
// WritePacket to files on disk (64 MB each, rotated, synced and
// renamed), on a mix made from the trafficgen corpus (benchMix). The writer waits for the
// output instead of dropping, so that the numbers are the pipeline's
// throughput (bytes of packet data per second, packets per second) and
// not the rate of drops. Files go to tmpfs when there is one, so that the
// machine's disk does not dominate. ratio is uncompressed over
// compressed bytes.
//
//	go test -run '^$' -bench Recorder -benchtime 2s ./pkg/storage/
func BenchmarkRecorder(b *testing.B) {
	for _, bc := range []struct {
		name  string
		comp  Compression
		level int
	}{
		{"pcapng", CompressNone, 0},
		{"zstd-1", CompressZstd, 1},
		{"zstd-3", CompressZstd, 3},
		{"gzip-1", CompressGzip, 1},
		{"gzip-6", CompressGzip, 6},
	} {
		b.Run(bc.name, func(b *testing.B) {
			frames := benchMix()
			var size int
			for _, f := range frames {
				size += len(f)
			}
			dir := benchDir(b)
			r, err := NewRecorder(Options{Dir: dir, Interfaces: eth0, Compression: bc.comp, CompressionLevel: bc.level,
				FileSize: 64e6, Logger: discardLog, waitForQueue: true})
			if err != nil {
				b.Fatal(err)
			}
			pkts := make([]pcapio.Packet, len(frames))
			for i, f := range frames {
				pkts[i] = pcapio.Packet{WireLen: uint32(len(f)), Data: f, Direction: pcapio.DirInbound}
			}
			ts := time.Now().UnixNano()
			b.SetBytes(int64(size / len(frames)))
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				p := &pkts[i%len(pkts)]
				ts += 713
				p.Timestamp = ts
				if err := r.WritePacket(p); err != nil {
					b.Fatal(err)
				}
				if i%4096 == 0 {
					r.Flush()
				}
			}
			if err := r.Close(); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			s := r.Stats()
			if s.WriteDrops != 0 || s.PacketsWritten != uint64(b.N) {
				b.Fatalf("stats %+v after %d packets", s, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pkts/s")
			if s.CompressorBytesOut > 0 {
				b.ReportMetric(float64(s.CompressorBytesIn)/float64(s.CompressorBytesOut), "ratio")
			}
		})
	}
}

// benchMix is 32 MiB of frames from the trafficgen corpus (TCP, UDP,
// ICMP, ARP, IPv6, VLAN, MPLS, 60-1518 bytes) made to look like traffic
// rather than a loop of the same few hundred frames, which a compressor
// with a 1 MiB window would find and shrink sixtyfold: each frame gets its
// own IPv4 ID or IPv6 flow label and transport ports and sequence bytes
// (bytes 18-19 and 34-41 varied), and three frames in four carry random
// bytes after the first 54 (encrypted payload, as most traffic is); the
// fourth keeps the corpus's patterned payload.
var benchMix = sync.OnceValue(func() [][]byte {
	c := corpus()
	rng := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for total, i := 0, 0; total < 32<<20; i++ {
		f := bytes.Clone(c[i%len(c)])
		for _, off := range []int{18, 19, 34, 35, 36, 37, 38, 39, 40, 41} {
			if off < len(f) {
				f[off] = byte(rng.Uint32())
			}
		}
		if i%4 != 0 {
			for j := 54; j < len(f); j++ {
				f[j] = byte(rng.Uint32())
			}
		}
		out = append(out, f)
		total += len(f)
	}
	return out
})

// benchDir is a directory on tmpfs if there is one.
func benchDir(b *testing.B) string {
	return fastTempDir(b)
}
