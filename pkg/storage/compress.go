package storage

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// frameWriter compresses into a sequence of independent frames (zstd
// frames, gzip members): a reader may start at any frame, and a torn
// file loses only its last frame. It runs in the Recorder's output
// goroutine, one encoder goroutine (no internal concurrency), so that
// compression costs at most one core per capture.
type frameWriter interface {
	// Write compresses p into the current frame, starting one if none
	// is open.
	Write(p []byte) (int, error)
	// Flush pushes what the current frame holds so far to the output
	// (a zstd block or deflate sync point), without ending it.
	Flush() error
	// EndFrame ends the current frame (checksum and all); nothing if
	// none is open.
	EndFrame() error
	// Reset starts over on another output, dropping any open frame.
	Reset(w io.Writer)
}

// newFrameWriter returns the frame writer for c, or nil for none. The
// zstd window is the frame size (a power of two, 1 to 8 MiB): a frame
// never refers to data before it anyway.
func newFrameWriter(c Compression, level, frameSize int) (frameWriter, error) {
	switch c {
	case CompressZstd:
		window := 1 << 20
		for window < frameSize && window < 8<<20 {
			window <<= 1
		}
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(true),
			zstd.WithWindowSize(window))
		if err != nil {
			return nil, fmt.Errorf("new zstd encoder: %w", err)
		}
		return &zstdFrames{enc: enc}, nil
	case CompressGzip:
		gw, err := gzip.NewWriterLevel(io.Discard, level)
		if err != nil {
			return nil, fmt.Errorf("new gzip encoder: %w", err)
		}
		return &gzipMembers{gw: gw}, nil
	}
	return nil, nil
}

type zstdFrames struct {
	enc  *zstd.Encoder
	w    io.Writer
	open bool
}

func (z *zstdFrames) Write(p []byte) (int, error) {
	if !z.open {
		z.enc.Reset(z.w)
		z.open = true
	}
	return z.enc.Write(p)
}

func (z *zstdFrames) Flush() error {
	if !z.open {
		return nil
	}
	return z.enc.Flush()
}

func (z *zstdFrames) EndFrame() error {
	if !z.open {
		return nil
	}
	z.open = false
	return z.enc.Close()
}

func (z *zstdFrames) Reset(w io.Writer) {
	z.w, z.open = w, false
	z.enc.Reset(io.Discard) // drop the state of an open frame
}

type gzipMembers struct {
	gw   *gzip.Writer
	w    io.Writer
	open bool
}

func (g *gzipMembers) Write(p []byte) (int, error) {
	if !g.open {
		g.gw.Reset(g.w)
		g.open = true
	}
	return g.gw.Write(p)
}

func (g *gzipMembers) Flush() error {
	if !g.open {
		return nil
	}
	return g.gw.Flush()
}

func (g *gzipMembers) EndFrame() error {
	if !g.open {
		return nil
	}
	g.open = false
	return g.gw.Close()
}

func (g *gzipMembers) Reset(w io.Writer) {
	g.w, g.open = w, false
	g.gw.Reset(io.Discard)
}

// compressionName is FinishedFile.Compression of c.
func compressionName(c Compression) string {
	if c == CompressNone {
		return ""
	}
	return c.String()
}
