package livestream

import (
	"bufio"
	"io"
	"sync"
)

// maxDropIfaces bounds the interfaces whose drops a subscriber tracks
// one by one; packets of interfaces beyond are still counted in Dropped.
const maxDropIfaces = 4096

// Subscriber is one reader of a hub's stream, with a queue of its own.
type Subscriber struct {
	hub   *Hub
	limit int
	wake  chan struct{}

	mu      sync.Mutex
	queue   []entry
	qbytes  int         // bytes of packet blocks in queue
	pending []ifaceDrop // drops since the last queued block
	dropped uint64
	ended   bool // the hub ended: write the queue, then return
	closed  bool // Close: return now

	closeOnce sync.Once
}

// entry is a queued block, with the drops that happened just before it.
type entry struct {
	b     block
	drops []ifaceDrop
}

// ifaceDrop counts the packets of one interface a queue dropped in a row,
// with the timestamp of the last that had one.
type ifaceDrop struct {
	iface uint32
	n     uint64
	ts    uint64
	hasTS bool
}

// enqueue queues b, or drops it when it is a packet block and the queue
// is full. The hub calls it under its lock.
func (s *Subscriber) enqueue(b block) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.ended {
		return
	}
	if isPacket(b.typ) {
		if s.qbytes > 0 && s.qbytes+len(b.data) > s.limit {
			s.drop(b)
			return
		}
		s.qbytes += len(b.data)
	}
	s.queue = append(s.queue, entry{b: b, drops: s.pending})
	s.pending = nil
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drop counts a dropped packet block.
func (s *Subscriber) drop(b block) {
	s.dropped++
	iface, ts, hasTS := b.packetInfo()
	for i := range s.pending {
		if d := &s.pending[i]; d.iface == iface {
			d.n++
			if hasTS {
				d.ts, d.hasTS = ts, true
			}
			return
		}
	}
	if len(s.pending) < maxDropIfaces {
		s.pending = append(s.pending, ifaceDrop{iface: iface, n: 1, ts: ts, hasTS: hasTS})
	}
}

// end is the hub's End.
func (s *Subscriber) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.signal()
}

func (s *Subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Dropped is the number of packets the subscriber's queue dropped.
func (s *Subscriber) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close leaves the hub: WriteTo returns ErrClosed without writing what
// is queued. It is safe to call more than once, and from any goroutine.
func (s *Subscriber) Close() {
	s.closeOnce.Do(func() {
		s.hub.remove(s)
		s.mu.Lock()
		s.closed = true
		s.queue, s.pending = nil, nil
		s.mu.Unlock()
		s.signal()
	})
}

// WriteTo writes the subscriber's stream to w: the header the hub had
// when it subscribed, then the blocks as they are published, with the
// statistics blocks that count what the queue dropped. It flushes w
// (http.Flusher, or Flush() error) after each batch. It returns nil once
// the hub ended and the queue is written, ErrClosed after Close, or the
// error of w.
func (s *Subscriber) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	var sec section
	var scratch []byte
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.ended && !s.closed {
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		batch, ended, closed := s.queue, s.ended, s.closed
		var tail []ifaceDrop
		if ended {
			tail, s.pending = s.pending, nil
		}
		s.queue, s.qbytes = nil, 0
		s.mu.Unlock()
		if closed {
			return cw.n, ErrClosed
		}
		for _, e := range batch {
			scratch = sec.write(bw, scratch[:0], e)
		}
		if len(tail) > 0 {
			scratch = sec.write(bw, scratch[:0], entry{drops: tail})
		}
		err := bw.Flush()
		if err == nil {
			err = flush(w)
		}
		if err != nil {
			return cw.n, err
		}
		if ended {
			return cw.n, nil
		}
	}
}

// section is what a subscriber's writer knows of the section it writes:
// to write statistics blocks in its byte order, for its interfaces.
type section struct {
	started bool
	big     bool
	ifaces  uint32
	own     []uint64 // packets of each interface this subscriber dropped
	agent   []uint64 // isb_osdrop of each interface's last statistics from upstream
	lastTS  []uint64 // of each interface's last packet or statistics delivered
}

// grow makes room for interface i's counters.
func (sec *section) grow(i uint32) {
	for uint32(len(sec.own)) <= i {
		sec.own = append(sec.own, 0)
		sec.agent = append(sec.agent, 0)
		sec.lastTS = append(sec.lastTS, 0)
	}
}

// write writes e: a statistics block for each interface e's drops are
// of, then e's block, rewritten when it is a statistics block of an
// interface the subscriber dropped packets of. bufio.Writer errors are
// sticky: the caller sees them at Flush.
func (sec *section) write(bw *bufio.Writer, scratch []byte, e entry) []byte {
	for _, d := range e.drops {
		if !sec.started || d.iface >= sec.ifaces {
			continue // not an interface of the section: nothing to report it in
		}
		sec.grow(d.iface)
		sec.own[d.iface] += d.n
		ts := sec.lastTS[d.iface]
		if d.hasTS {
			ts = d.ts
		}
		total := sec.own[d.iface] + sec.agent[d.iface]
		scratch = appendISB(scratch[:0], byteOrder(sec.big), d.iface, ts, nil, total, dropComment(total, sec.own[d.iface], sec.agent[d.iface]))
		_, _ = bw.Write(scratch)
	}
	b := e.b
	if b.data == nil {
		return scratch
	}
	switch b.typ {
	case blockSHB:
		*sec = section{started: true, big: b.big}
	case blockIDB:
		sec.ifaces++
	case blockEPB, blockPB, blockSPB:
		if iface, ts, ok := b.packetInfo(); ok && iface < sec.ifaces {
			sec.grow(iface)
			sec.lastTS[iface] = ts
		}
	case blockISB:
		iface, ts, osdrop, rest, ok := parseISB(b)
		if !ok || iface >= sec.ifaces {
			break
		}
		sec.grow(iface)
		sec.agent[iface], sec.lastTS[iface] = osdrop, ts
		if own := sec.own[iface]; own > 0 {
			total := own + osdrop
			scratch = appendISB(scratch[:0], byteOrder(b.big), iface, ts, rest, total, dropComment(total, own, osdrop))
			_, _ = bw.Write(scratch)
			return scratch
		}
	}
	_, _ = bw.Write(b.data)
	return scratch
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
