package storage

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Magic numbers at the start of a file.
const (
	magicZstd   = 0xfd2fb528 // little endian
	magicGzip   = 0x8b1f     // little endian, first two bytes
	maxZstdBlk  = 128 << 10
	maxDecoded  = 2 * MaxFrameSize // bound on one frame's content
	skippableLo = 0x184d2a50
	skippableHi = 0x184d2a5f
)

// errTorn marks a frame cut short or failing its checksum.
var errTorn = errors.New("torn or damaged frame")

// frameSpan is one compressed frame: where it lies in the file and in the
// uncompressed stream.
type frameSpan struct {
	cStart, cEnd int64
	uStart, uEnd int64
	complete     bool // verified to its end (checksum)
}

// countingReader counts the bytes consumed through a bufio.Reader and is
// an io.ByteReader, so that decompressors stop exactly at a frame's end.
type countingReader struct {
	br *bufio.Reader
	n  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.br.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// frameSource yields the decoded content of a compressed file frame by
// frame; the last piece may come from a torn frame (gzip only).
type frameSource interface {
	// next returns the next frame's span and content; io.EOF after the
	// last. A torn frame whose decodable part is trusted comes back with
	// complete false; then next returns io.EOF.
	next() (frameSpan, []byte, error)
	// encode compresses b as one complete frame.
	encode(b []byte) ([]byte, error)
}

// zstdSource walks zstd frames. A frame counts only when it is complete
// and its checksum holds: the torn last frame of a crash is cut.
type zstdSource struct {
	cr  *countingReader
	dec *zstd.Decoder
	u   int64
	buf []byte
	out []byte
}

func newZstdSource(r io.Reader) (*zstdSource, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecoded))
	if err != nil {
		return nil, err
	}
	return &zstdSource{cr: &countingReader{br: bufio.NewReaderSize(r, 1<<20)}, dec: dec}, nil
}

func (z *zstdSource) close() { z.dec.Close() }

func (z *zstdSource) next() (frameSpan, []byte, error) {
	for {
		start := z.cr.n
		raw, skippable, err := z.readFrame()
		if err != nil {
			return frameSpan{}, nil, err
		}
		if skippable {
			continue
		}
		out, err := z.dec.DecodeAll(raw, z.out[:0])
		if err != nil {
			return frameSpan{}, nil, fmt.Errorf("zstd frame at byte %d: %w: %w", start, errTorn, err)
		}
		z.out = out
		s := frameSpan{cStart: start, cEnd: z.cr.n, uStart: z.u, uEnd: z.u + int64(len(out)), complete: true}
		z.u = s.uEnd
		return s, out, nil
	}
}

// readFrame reads one whole frame by its structure (RFC 8878): header,
// blocks up to the last, checksum. io.EOF at a frame boundary is the
// clean end; a frame cut short gives errTorn.
func (z *zstdSource) readFrame() ([]byte, bool, error) {
	z.buf = z.buf[:0]
	get := func(n int) ([]byte, error) {
		off := len(z.buf)
		for range n {
			b, err := z.cr.ReadByte()
			if err != nil {
				if err == io.EOF && off == 0 && len(z.buf) == 0 {
					return nil, io.EOF
				}
				return nil, fmt.Errorf("zstd frame cut short: %w", errTorn)
			}
			z.buf = append(z.buf, b)
		}
		return z.buf[off:], nil
	}
	m, err := get(4)
	if err != nil {
		return nil, false, err
	}
	magic := binary.LittleEndian.Uint32(m)
	if magic >= skippableLo && magic <= skippableHi {
		sz, err := get(4)
		if err != nil {
			return nil, false, err
		}
		if _, err := get(int(binary.LittleEndian.Uint32(sz))); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	if magic != magicZstd {
		return nil, false, fmt.Errorf("bad zstd magic %#x: %w", magic, errTorn)
	}
	fhd, err := get(1)
	if err != nil {
		return nil, false, err
	}
	d := fhd[0]
	fcsFlag, single, checksum, dictFlag := d>>6, d&0x20 != 0, d&0x04 != 0, d&3
	n := [4]int{0, 1, 2, 4}[dictFlag] + [4]int{0, 2, 4, 8}[fcsFlag]
	if !single {
		n++ // window descriptor
	} else if fcsFlag == 0 {
		n++ // one-byte content size
	}
	if _, err := get(n); err != nil {
		return nil, false, err
	}
	for {
		h, err := get(3)
		if err != nil {
			return nil, false, err
		}
		v := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
		last, typ, size := v&1 != 0, (v>>1)&3, int(v>>3)
		switch typ {
		case 1: // RLE
			size = 1
		case 3:
			return nil, false, fmt.Errorf("reserved zstd block type: %w", errTorn)
		}
		if size > maxZstdBlk {
			return nil, false, fmt.Errorf("zstd block of %d bytes: %w", size, errTorn)
		}
		if _, err := get(size); err != nil {
			return nil, false, err
		}
		if last {
			break
		}
	}
	if checksum {
		if _, err := get(4); err != nil {
			return nil, false, err
		}
	}
	return z.buf, false, nil
}

func (z *zstdSource) encode(b []byte) ([]byte, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(DefaultZstdLevel)))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil), nil
}

// gzipSource walks gzip members. A complete member is verified by its
// CRC; of a torn last member, what decodes is kept (the pcap check that
// follows decides how much of it).
type gzipSource struct {
	cr   *countingReader
	zr   *gzip.Reader
	u    int64
	out  []byte
	done bool
}

func newGzipSource(r io.Reader) *gzipSource {
	return &gzipSource{cr: &countingReader{br: bufio.NewReaderSize(r, 1<<20)}}
}

func (g *gzipSource) next() (frameSpan, []byte, error) {
	if g.done {
		return frameSpan{}, nil, io.EOF
	}
	start := g.cr.n
	if _, err := g.cr.br.Peek(1); err == io.EOF {
		return frameSpan{}, nil, io.EOF
	}
	var err error
	if g.zr == nil {
		g.zr, err = gzip.NewReader(g.cr)
	} else {
		err = g.zr.Reset(g.cr)
	}
	if err != nil {
		g.done = true
		return frameSpan{}, nil, fmt.Errorf("gzip member header at byte %d: %w: %w", start, errTorn, err)
	}
	g.zr.Multistream(false)
	var buf bytes.Buffer
	buf.Grow(1 << 20)
	_, err = io.Copy(&buf, io.LimitReader(g.zr, maxDecoded))
	g.out = buf.Bytes()
	s := frameSpan{cStart: start, cEnd: g.cr.n, uStart: g.u, uEnd: g.u + int64(len(g.out)), complete: err == nil}
	g.u = s.uEnd
	if err != nil {
		g.done = true // a torn member ends the file
	}
	return s, g.out, nil
}

func (g *gzipSource) encode(b []byte) ([]byte, error) {
	var out bytes.Buffer
	w, err := gzip.NewWriterLevel(&out, DefaultGzipLevel)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// frameStream is the uncompressed content of a frameSource as one
// stream, recording the spans of the frames it has read.
type frameStream struct {
	src    frameSource
	spans  []frameSpan
	cur    []byte
	ended  bool
	endErr error
}

func (s *frameStream) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if s.ended {
			return 0, io.EOF
		}
		span, b, err := s.src.next()
		if err != nil {
			s.ended = true
			if err != io.EOF {
				s.endErr = err
			}
			return 0, io.EOF // what follows cannot be verified
		}
		s.spans = append(s.spans, span)
		s.cur = b
		if !span.complete {
			s.ended = true
		}
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}
