package ringbuf

// span locates one record in a Batch's arena.
type span struct {
	off uint32
	n   uint32
}

// recordAlign is the alignment of every record's first byte inside the arena
// (the same as in the BPF ring), so that fixed-size headers at the start of a
// record are 8-byte aligned.
const recordAlign = 8

func alignUp(n int) int { return (n + recordAlign - 1) &^ (recordAlign - 1) }

// Batch holds the records read by one ReadBatch or ReadAvailable call (or
// several, if the caller does not Reset in between).
//
// All records live in one arena, a []byte that is allocated by NewBatch,
// reused after Reset and only ever grows in one case: a record larger than the
// whole arena arriving while the batch is empty (see Append). A Batch is not
// safe for concurrent use; hand it between goroutines (e.g. with a Pool).
type Batch struct {
	arena []byte // len(arena) is the capacity in use; never resliced
	used  int    // arena bytes used, each record starting 8-byte aligned
	bytes int    // sum of record lengths
	recs  []span // cap(recs) is the record limit
}

// NewBatch returns a Batch with an arena of arenaBytes bytes that holds at
// most maxRecords records. If maxRecords <= 0, the limit is arenaBytes/8 (at
// least 1). An arenaBytes <= 0 gives an empty arena that grows to fit the first
// record (so each call then returns a single record).
func NewBatch(arenaBytes, maxRecords int) *Batch {
	if arenaBytes < 0 {
		arenaBytes = 0
	}
	arenaBytes = alignUp(arenaBytes)
	if maxRecords <= 0 {
		maxRecords = max(arenaBytes/recordAlign, 1)
	}
	return &Batch{
		arena: make([]byte, arenaBytes),
		recs:  make([]span, 0, maxRecords),
	}
}

// Len returns the number of records in the batch.
func (b *Batch) Len() int { return len(b.recs) }

// Record returns record i (0 <= i < Len). The slice aliases the arena: it is
// valid until Reset, and its capacity is its length so appending to it copies.
func (b *Batch) Record(i int) []byte {
	s := b.recs[i]
	end := s.off + s.n
	return b.arena[s.off:end:end]
}

// Bytes returns the total length of the records in the batch.
func (b *Batch) Bytes() int { return b.bytes }

// Cap returns the arena size in bytes.
func (b *Batch) Cap() int { return len(b.arena) }

// MaxRecords returns the record limit.
func (b *Batch) MaxRecords() int { return cap(b.recs) }

// Full reports whether the record limit is reached.
func (b *Batch) Full() bool { return len(b.recs) == cap(b.recs) }

// Reset empties the batch, keeping its arena. Slices from Record become
// invalid (they will be overwritten).
func (b *Batch) Reset() {
	b.used = 0
	b.bytes = 0
	b.recs = b.recs[:0]
}

// Append copies p into the batch as a new record and reports whether it did.
// It returns false, without copying, if the record limit is reached or if p
// does not fit in the rest of the arena while the batch is not empty. An empty
// batch always accepts p: if p is larger than the whole arena, the arena is
// replaced by a larger one (the only allocation a Batch makes after NewBatch),
// which is then kept for reuse. Records coming from a ring are never larger
// than the ring, so this growth is bounded by the ring size.
//
// Append is what ReadBatch does for each record; it is exported so that
// tests and tools can build batches without a ring.
func (b *Batch) Append(p []byte) bool {
	dst := b.reserve(len(p))
	if dst == nil {
		return false
	}
	copy(dst, p)
	return true
}

// reserve adds a record of n bytes and returns the arena bytes to fill, or nil
// if there is no room. It is small enough to be inlined into the read loop.
func (b *Batch) reserve(n int) []byte {
	off := b.used
	if off+n > len(b.arena) || len(b.recs) == cap(b.recs) {
		if len(b.recs) != 0 || cap(b.recs) == 0 {
			return nil
		}
		b.grow(n)
		off = 0
	}
	b.recs = append(b.recs, span{off: uint32(off), n: uint32(n)})
	b.used = alignUp(off + n)
	b.bytes += n
	return b.arena[off : off+n : off+n]
}

// grow replaces the arena of an empty batch by one of at least n bytes.
func (b *Batch) grow(n int) {
	b.arena = make([]byte, alignUp(n))
}
