// Package ringbuf reads BPF_MAP_TYPE_RINGBUF maps in batches: one call
// drains every record available into a reusable arena (Batch), with no
// allocation per record and at most one epoll wait per wakeup.
//
// We write our own instead of using github.com/cilium/ebpf/ringbuf because
// that reader returns one record per call under a mutex and has no batch
// drain; at millions of records per second the per-call cost dominates. The
// capture tool runs one Reader per CPU ring, each in its own goroutine, and
// hands full batches to a writer goroutine through a Pool.
//
// # Mechanics
//
// NewReader maps the consumer page read-write (offset 0) and the producer
// page plus the data area read-only (offset one page, length page +
// 2*max_entries: the kernel maps the data twice in a row, so a record that
// wraps around the end is contiguous). Each record is an 8-byte header whose
// first u32 is the length with BPF_RINGBUF_BUSY_BIT (reserved, not yet
// committed) and BPF_RINGBUF_DISCARD_BIT, followed by the data; the next
// record starts round_up(len+8, 8) bytes later. The producer position and the
// lengths are loaded atomically (acquire), the data is copied into the
// batch's arena, then the consumer position is stored atomically (release),
// which gives the space back to the producer. Discarded records are skipped
// and counted; a busy record ends the drain (the rest is read on the next
// call).
//
// ReadBatch blocks in epoll_wait on the map fd (EPOLLIN, level-triggered)
// and an eventfd. Interrupt and Close write the eventfd, so they wake a
// blocked ReadBatch at once; nothing relies on timeouts. A producer that
// uses BPF_RB_NO_WAKEUP for small amounts relies on a periodic Interrupt to
// get its records read: an interrupted ReadBatch returns the records waiting
// in the ring, if any, and ErrInterrupted once a call finds the ring empty,
// so a reader loop stopped with Interrupt sees every record first.
//
// # Batches
//
// A Batch is one []byte arena plus record offsets, both allocated by
// NewBatch and reused after Reset. ReadBatch stops adding records when the
// arena or the record limit is full; the rest stay in the ring. A record
// larger than the whole arena is never a deadlock: when the batch is empty,
// the arena grows (once, and is kept) to fit it. Records are at most the ring
// size, so this growth is bounded and there is no ErrRecordTooLarge. When a
// non-empty batch has no room for the next record and nothing was appended,
// ReadBatch and ReadAvailable return ErrBatchFull.
//
// # Concurrency
//
// ReadBatch and ReadAvailable are serialized (there is one consumer
// position) and are meant for one goroutine per Reader. Interrupt,
// AvailableBytes, Discarded, Size and Close may be called from any goroutine.
// Close waits for a running read to return before it unmaps the ring: reads
// hold a read lock for the whole call (not per record), Close takes the write
// lock after waking the reader.
package ringbuf
