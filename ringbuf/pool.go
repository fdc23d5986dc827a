package ringbuf

import "sync"

// Pool is a fixed free list of Batches, so that reader and writer goroutines
// can hand batches back and forth without allocating: the reader Gets an
// empty batch, fills it with ReadBatch and sends it to the writer, which Puts
// it back when written. It is a buffered channel; all methods are safe for
// concurrent use.
type Pool struct {
	free      chan *Batch
	done      chan struct{}
	closeOnce sync.Once
}

// NewPool returns a Pool holding n (at least 1) batches made by
// NewBatch(arenaBytes, maxRecords).
func NewPool(n, arenaBytes, maxRecords int) *Pool {
	n = max(n, 1)
	p := &Pool{free: make(chan *Batch, n), done: make(chan struct{})}
	for range n {
		p.free <- NewBatch(arenaBytes, maxRecords)
	}
	return p
}

// Get returns an empty batch, waiting for one to be Put back if none is free.
// After Close it returns nil (and a Get waiting when Close is called returns
// nil at once).
func (p *Pool) Get() *Batch {
	select {
	case <-p.done:
		return nil
	default:
	}
	select {
	case b := <-p.free:
		return b
	case <-p.done:
		return nil
	}
}

// TryGet returns an empty batch if one is free, or nil without waiting
// (always nil after Close).
func (p *Pool) TryGet() *Batch {
	select {
	case <-p.done:
		return nil
	default:
	}
	select {
	case b := <-p.free:
		return b
	default:
		return nil
	}
}

// Put resets b and returns it to the pool. It never blocks: a batch beyond
// the pool's capacity (one it did not hand out) is dropped, as is nil. Put
// after Close is allowed.
func (p *Pool) Put(b *Batch) {
	if b == nil {
		return
	}
	b.Reset()
	select {
	case p.free <- b:
	default:
	}
}

// Free returns how many batches are in the pool now.
func (p *Pool) Free() int { return len(p.free) }

// Close makes every waiting and later Get return nil. Idempotent.
func (p *Pool) Close() {
	p.closeOnce.Do(func() { close(p.done) })
}
