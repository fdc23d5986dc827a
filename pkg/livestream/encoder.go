package livestream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// DefaultBufferBytes is the buffer of an Encoder, and the queue of a
// Subscriber, when their options leave it 0.
const DefaultBufferBytes = 4 << 20

// statsInterval is how often an Encoder writes its statistics blocks.
const statsInterval = time.Second

// ErrClosed is returned by an Encoder's WritePacket after Close, and by
// a Subscriber's WriteTo after Close.
var ErrClosed = errors.New("live stream closed")

// EncoderOptions configure an Encoder.
type EncoderOptions struct {
	// BufferBytes bounds the encoded packets waiting for WriteTo
	// (DefaultBufferBytes when 0); a packet that does not fit is dropped.
	BufferBytes int
	// Application is the section header's shb_userappl.
	Application string
}

// Encoder encodes packets into a pcapng stream without ever blocking the
// capture: one live push of an agent. Its methods are safe for
// concurrent use.
type Encoder struct {
	limit  int
	ifaces int
	wake   chan struct{} // a packet was buffered
	done   chan struct{} // closed by Close

	mu      sync.Mutex
	w       *pcapio.Writer // encodes into buf
	buf     sinkBuffer
	err     error // sticky: the options were bad, or WriteTo failed
	drops   []uint64
	dropped uint64
	closed  bool
	started bool // WriteTo was called

	closeOnce sync.Once
}

// sinkBuffer is where the pcapio.Writer flushes to: the encoded blocks
// waiting for WriteTo.
type sinkBuffer struct{ b []byte }

func (s *sinkBuffer) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// writerBuffer is the pcapio.Writer's own buffer: it hands its blocks to
// the sinkBuffer when full and at each of WriteTo's batches.
const writerBuffer = 64 << 10

// NewEncoder returns an Encoder of a stream describing ifaces, which
// Packet.Interface indexes. Bad interfaces (none, or names too long for
// pcapng) make WritePacket and WriteTo return the error.
func NewEncoder(ifaces []pcapio.Interface, opts EncoderOptions) *Encoder {
	e := &Encoder{
		limit:  opts.BufferBytes,
		ifaces: len(ifaces),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		drops:  make([]uint64, len(ifaces)),
	}
	if e.limit <= 0 {
		e.limit = DefaultBufferBytes
	}
	w, err := pcapio.NewWriter(&e.buf, pcapio.WriterOptions{
		Format: pcapio.FormatPCAPNG, Application: opts.Application, Interfaces: ifaces,
		BufferSize: min(writerBuffer, e.limit),
	})
	if err != nil {
		e.err = fmt.Errorf("live stream: %w", err)
		return e
	}
	e.w = w
	return e
}

// WritePacket encodes p, or drops it when the buffer is full. It never
// waits for WriteTo. p.Data may be reused once it returns.
func (e *Encoder) WritePacket(p *pcapio.Packet) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return ErrClosed
	case e.err != nil:
		return e.err
	case p.Interface < 0 || p.Interface >= e.ifaces:
		return fmt.Errorf("live stream: packet of interface %d, the stream has %d", p.Interface, e.ifaces)
	}
	// An enhanced packet block is at most 44 bytes more than its data.
	if len(e.buf.b)+e.w.Buffered()+44+len(p.Data) > e.limit {
		e.drops[p.Interface]++
		e.dropped++
		return nil
	}
	if err := e.w.WritePacket(p); err != nil {
		return fmt.Errorf("live stream: %w", err)
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return nil
}

// Dropped is the number of packets dropped because the buffer was full.
func (e *Encoder) Dropped() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dropped
}

// WriteTo writes the stream to w: the section header and interface
// descriptions, then the packets as they are written, with statistics
// blocks every second and at the end. It returns once Close was called
// and everything was written, or when w fails (the Encoder then drops
// every packet). It may be called once.
func (e *Encoder) WriteTo(w io.Writer) (int64, error) {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return 0, errors.New("live stream: WriteTo called twice")
	}
	e.started = true
	err := e.err
	e.mu.Unlock()
	if err != nil {
		return 0, err
	}
	tick := time.NewTicker(statsInterval)
	defer tick.Stop()
	var (
		written int64
		spare   []byte
	)
	for {
		stats, final := false, false
		select {
		case <-e.wake:
		case <-tick.C:
			stats = true
		case <-e.done:
			stats, final = true, true
		}
		e.mu.Lock()
		_ = e.w.Flush() // into e.buf, which does not fail
		if stats {
			now := uint64(time.Now().UnixNano()) // the interfaces' resolution: pcapio writes if_tsresol 9
			for i, n := range e.drops {
				e.buf.b = appendISB(e.buf.b, binary.LittleEndian, uint32(i), now, nil, n, dropComment(n, 0, n))
			}
		}
		out := e.buf.b
		e.buf.b = spare[:0]
		e.mu.Unlock()

		if len(out) > 0 {
			n, err := w.Write(out)
			written += int64(n)
			if err == nil {
				err = flush(w)
			}
			if err != nil {
				err = fmt.Errorf("write live stream: %w", err)
				e.mu.Lock()
				e.err = err
				e.buf.b = nil
				e.mu.Unlock()
				return written, err
			}
		}
		spare = out
		if final {
			return written, nil
		}
	}
}

// Close ends the stream: WritePacket refuses packets from now on, and
// WriteTo writes what it holds and the last statistics, and returns. It
// is safe to call more than once.
func (e *Encoder) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		close(e.done)
	})
	return nil
}

// flush flushes w, if it buffers: an http.ResponseWriter (http.Flusher),
// a bufio.Writer and the like (Flush() error).
func flush(w io.Writer) error {
	switch f := w.(type) {
	case interface{ Flush() error }:
		return f.Flush()
	case http.Flusher:
		f.Flush()
	}
	return nil
}
