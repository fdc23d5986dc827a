package storage

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// Recorder writes a capture's packets into a rotating set of files: it
// is the capture's PacketWriter (WritePacket, Flush, WriteInterfaceStats)
// and Close finishes the file being written. WritePacket and Flush are
// meant for one goroutine (the capture's writer); Stats may be called
// from any.
//
// The writer goroutine only encodes: full buffers go through a bounded
// queue to the Recorder's output goroutine, which compresses and writes,
// and a finishing goroutine syncs and renames. When the queue is full
// (slow disk or compressor) or the file system fails, packets are dropped
// whole and counted (Stats.WriteDrops); WritePacket never blocks on the
// disk and never returns an I/O error.
type Recorder struct {
	opts    Options
	log     *slog.Logger
	namer   namer
	root    string
	ifaces  []string
	enc     frameWriter // output goroutine only
	bufCap  int         // capacity of the encoding buffers
	chunk   int         // a buffer is handed over once it holds this much
	isbRoom int         // bytes of a file's closing statistics blocks
	startNs int64

	// Writer side, under mu.
	mu         sync.Mutex
	closed     bool
	pw         *pcapio.Writer
	cur        *file
	seq        uint64
	backing    []byte // buffer reserved for what pw holds
	forced     bool   // backing was allocated outside the pool
	allocated  int    // pool buffers made so far
	bufPackets uint64 // packets in pw's buffer
	bufMin     int64
	bufMax     int64
	resumeAt   int64 // after a write error: when to try a new file
	maxTs      int64 // latest packet timestamp so far
	unpooled   atomic.Int32

	out  chan item   // writer → output
	free chan []byte // output → writer: the pool
	fin  chan *file  // output → finisher
	stop chan struct{}
	wg   sync.WaitGroup

	// Output side.
	outCur    *file
	failing   bool       // the last file failed; no success since
	finishMu  sync.Mutex // a finished file's rename and OnFinish, against retention
	errMu     sync.Mutex
	finalErr  error        // of the last file, for Close
	finalSeq  atomic.Int64 // its sequence number, -1 before Close
	closeOnce sync.Once

	retention  *retention
	postrotate *postrotator
	recovered  []RecoveredFile

	// Temporary names being finished: a name that comes round again
	// (FILE with -W) waits for its previous file's rename.
	pendingMu sync.Mutex
	pending   map[string]chan struct{}

	counters counters
}

// counters back Stats.
type counters struct {
	filesWritten, bytesWritten, packetsWritten, rotations atomic.Uint64
	compIn, compOut, writeDrops, writeErrors              atomic.Uint64
	postrotateFailures, retFiles, retBytes, retLosses     atomic.Uint64
	recovered                                             atomic.Uint64
}

// file is one output file.
type file struct {
	seq          uint64
	rel          string // final name relative to the root, "/"-separated
	path, temp   string
	start        time.Time
	deadline     int64 // rotate when a packet's timestamp reaches it
	base         []pcapio.InterfaceStats
	baseTime     int64 // start of the span of the statistics blocks
	statsDone    []bool
	failed       atomic.Bool // set by the output goroutine
	end          time.Time   // set by the writer with the last item
	finished     time.Time   // the end, as the output goroutine saw it
	opened, dead bool        // output goroutine only
	fh           *os.File
	cw           *countingWriter
	committed    span
	frame        span // compressed: since the current frame started
	frameSince   time.Time
	frameIn      int64
}

// span counts packets, their time range and bytes.
type span struct {
	packets  uint64
	min, max int64
	bytes    int64
}

func (s *span) add(packets uint64, lo, hi int64) {
	if packets == 0 {
		return
	}
	if s.packets == 0 || lo < s.min {
		s.min = lo
	}
	if s.packets == 0 || hi > s.max {
		s.max = hi
	}
	s.packets += packets
}

// item is one buffer of whole blocks for the output goroutine.
type item struct {
	f        *file
	buf      []byte
	pooled   bool
	packets  uint64
	min, max int64
	last     bool // the file ends after buf
	flush    bool // push to the file system now
}

// maxBlockOverhead bounds the bytes a packet block adds to its data.
const maxBlockOverhead = 64

// NewRecorder checks opts, recovers the temporary files a crashed
// predecessor left in the output directory (see Recovered), and opens
// the first file. Nothing else is created if it fails.
func NewRecorder(opts Options) (*Recorder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if len(opts.Interfaces) == 0 {
		return nil, fmt.Errorf("%w: no interfaces", ErrInvalid)
	}
	o := opts.withDefaults()
	level, _ := o.level()
	r := &Recorder{opts: o, log: o.Logger, root: o.root(), startNs: o.now().UnixNano()}
	r.finalSeq.Store(-1)
	r.pending = map[string]chan struct{}{}
	for _, ifc := range o.Interfaces {
		r.ifaces = append(r.ifaces, ifc.Name)
	}
	var err error
	r.namer, err = o.namer(nameValues{iface: strings.Join(r.ifaces, "+"), capture: o.Capture, host: o.Host})
	if err != nil {
		return nil, err
	}
	if r.enc, err = newFrameWriter(o.Compression, level, o.FrameSize); err != nil {
		return nil, err
	}
	r.isbRoom = len(o.Interfaces) * 80
	r.chunk = max(o.chunkSize-r.isbRoom, 4096)
	r.bufCap = r.chunk + r.isbRoom + 64<<10
	r.out = make(chan item, o.queueChunks+4)
	r.free = make(chan []byte, o.queueChunks)
	r.fin = make(chan *file, 4)
	r.stop = make(chan struct{})
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnwritable, err)
		}
	}
	r.pw, err = pcapio.NewWriter(sinkWriter{r}, pcapio.WriterOptions{
		Format: o.Format, Application: o.Application, Interfaces: o.Interfaces, BufferSize: r.bufCap,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	r.recovered, err = recoverDir(r.root, r.namer.match, r.namer.reuses(), r.namer.nested(), r.log)
	if err != nil {
		return nil, err
	}
	now := o.now()
	f := r.newFile(now.UnixNano(), r.sampleStats())
	if err := r.openFile(f); err != nil {
		return nil, fmt.Errorf("%w: create %s: %w", ErrUnwritable, f.temp, err)
	}
	r.cur = f
	r.retention = newRetention(r)
	r.postrotate = newPostrotator(r)
	for _, rf := range r.recovered {
		if rf.Err == nil && rf.Path != "" {
			r.counters.recovered.Add(1)
			r.counters.filesWritten.Add(1)
			if o.OnFinish != nil {
				o.OnFinish(rf.FinishedFile)
			}
			r.postrotate.enqueue(rf.Path)
		}
	}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.output()
	}()
	go func() {
		defer r.wg.Done()
		r.finisher()
	}()
	if o.FileAge > 0 {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.timer()
		}()
	}
	return r, nil
}

// Recovered reports the temporary files NewRecorder found and what it
// made of them.
func (r *Recorder) Recovered() []RecoveredFile { return r.recovered }

// Stats returns the counters so far. Safe from any goroutine.
func (r *Recorder) Stats() Stats {
	c := &r.counters
	return Stats{
		FilesWritten: c.filesWritten.Load(), BytesWritten: c.bytesWritten.Load(), PacketsWritten: c.packetsWritten.Load(),
		Rotations: c.rotations.Load(), CompressorBytesIn: c.compIn.Load(), CompressorBytesOut: c.compOut.Load(),
		WriteDrops: c.writeDrops.Load(), WriteErrors: c.writeErrors.Load(), PostrotateFailures: c.postrotateFailures.Load(),
		RetentionDeletedFiles: c.retFiles.Load(), RetentionDeletedBytes: c.retBytes.Load(), RetentionLosses: c.retLosses.Load(),
		RecoveredFiles: c.recovered.Load(),
	}
}

// CurrentFile is the final path of the file being written now ("" between
// files and after Close).
func (r *Recorder) CurrentFile() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil || r.closed {
		return ""
	}
	return r.cur.path
}

// WritePacket adds a packet to the current file, rotating first if its
// size or time is up. It returns an error only for a packet no file could
// hold (an interface out of range, a negative timestamp); a packet that
// cannot be written now (write error, full queue) is dropped and counted.
func (r *Recorder) WritePacket(p *pcapio.Packet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if p.Interface < 0 || p.Interface >= len(r.ifaces) {
		return fmt.Errorf("write packet: interface %d out of range, recorder has %d", p.Interface, len(r.ifaces))
	}
	ts := p.Timestamp
	bound := len(p.Data) + maxBlockOverhead
	switch {
	case r.cur.failed.Load():
		// The file failed: drop until the backoff has passed, then try
		// a new one.
		if r.resumeAt == 0 {
			r.resumeAt = ts + r.opts.resumeBackoff.Nanoseconds()
		}
		if ts < r.resumeAt || !r.rotate(ts) {
			r.counters.writeDrops.Add(1)
			return nil
		}
		r.resumeAt = 0
	case r.opts.FileAge > 0 && ts >= r.cur.deadline:
		r.rotate(ts)
	case r.opts.FileSize > 0 && r.pw.Packets() > 0 && r.pw.Written()+int64(bound+r.isbRoom) > r.opts.FileSize:
		r.rotate(ts)
	}
	if r.bufPackets > 0 && r.pw.Buffered()+bound > r.chunk && !r.handoff(false, false, false) {
		r.counters.writeDrops.Add(1)
		return nil
	}
	if r.backing == nil && !r.acquire() {
		r.counters.writeDrops.Add(1) // the queue is full
		return nil
	}
	if err := r.pw.WritePacket(p); err != nil {
		return err
	}
	if r.bufPackets == 0 || ts < r.bufMin {
		r.bufMin = ts
	}
	if r.bufPackets == 0 || ts > r.bufMax {
		r.bufMax = ts
	}
	r.bufPackets++
	r.maxTs = max(r.maxTs, ts)
	return nil
}

// Flush hands what is buffered to the output goroutine, which writes it
// to the file system (for compressed files, up to a block boundary). It
// does not wait for the write.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.bufPackets > 0 {
		r.handoff(false, true, false)
	}
	return nil
}

// WriteInterfaceStats records the capture's cumulative counters for
// interface iface: the current file gets a statistics block for its own
// span (the counters minus those at its start, with isb_starttime and
// isb_endtime), and Close writes no other for this interface. For classic
// pcap it does nothing.
func (r *Recorder) WriteInterfaceStats(iface int, s pcapio.InterfaceStats) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if iface < 0 || iface >= len(r.ifaces) {
		return fmt.Errorf("write interface statistics: interface %d out of range, recorder has %d", iface, len(r.ifaces))
	}
	end := s.Timestamp
	if end == 0 {
		end = r.opts.now().UnixNano()
	}
	if err := r.pw.WriteInterfaceStats(iface, r.fileStats(iface, s, end)); err != nil {
		return err
	}
	r.cur.statsDone[iface] = true
	return nil
}

// Close finishes the current file (statistics blocks, sync, rename),
// waits for the output, finishing and postrotate goroutines and runs
// retention once more. It returns an error if the last file could not be
// finished. Safe to call more than once.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.finalSeq.Store(int64(r.cur.seq))
		// The end is now, but never before a packet or the start: the
		// packets' clock and the system's may differ a little.
		now := max(r.opts.now().UnixNano(), r.maxTs, r.cur.start.UnixNano())
		r.writeStats(now, r.sampleStatsIfNeeded())
		r.cur.end = time.Unix(0, now)
		r.handoff(true, false, true)
		r.mu.Unlock()
		close(r.stop)
		close(r.out)
		r.wg.Wait()
		r.retention.close()
		r.postrotate.close()
	})
	return r.finalErr
}

// timer rotates by time when no packet comes to do it: it wakes at the
// current file's deadline (and at least every 250 ms, in case the clock
// moves).
func (r *Recorder) timer() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		now := r.opts.now().UnixNano()
		if !r.closed && now >= r.cur.deadline {
			r.rotate(max(now, r.maxTs))
		}
		wait := time.Duration(r.cur.deadline - now)
		r.mu.Unlock()
		t.Reset(min(max(wait, time.Millisecond), 250*time.Millisecond))
	}
}

// newFile starts the bookkeeping of the next file; base are the
// cumulative counters at its start.
func (r *Recorder) newFile(now int64, base []pcapio.InterfaceStats) *file {
	start := time.Unix(0, now).UTC()
	rel := r.namer.next(r.seq, start)
	f := &file{
		seq: r.seq, rel: rel, start: start,
		path:      filepath.Join(r.root, filepath.FromSlash(rel)),
		temp:      filepath.Join(r.root, filepath.FromSlash(tempName(rel))),
		statsDone: make([]bool, len(r.ifaces)),
		base:      base,
		baseTime:  now,
		deadline:  1<<63 - 1,
	}
	if r.opts.FileAge > 0 {
		f.deadline = now + r.opts.FileAge.Nanoseconds()
	}
	if r.opts.Stats == nil {
		f.baseTime = r.startNs // the counters given are since the start
	}
	r.seq++
	return f
}

// rotate ends the current file and starts the next. It declines (false)
// while two rotations wait in the output queue without a pool buffer, so
// that a stuck disk cannot make the queue grow.
func (r *Recorder) rotate(now int64) bool {
	if r.unpooled.Load() >= 2 {
		return false
	}
	sample := r.sampleStats()
	r.writeStats(now, sample)
	r.cur.end = time.Unix(0, now)
	r.handoff(true, false, true)
	r.counters.rotations.Add(1)
	r.cur = r.newFile(now, sample)
	// The previous section was handed over; this only buffers the
	// header of the new file.
	if err := r.pw.StartSection(sinkWriter{r}); err != nil {
		r.log.Error("start capture file", "file", r.cur.path, "error", err)
	}
	return true
}

// sampleStats returns the capture's cumulative counters, nil without
// Options.Stats.
func (r *Recorder) sampleStats() []pcapio.InterfaceStats {
	if r.opts.Stats == nil {
		return nil
	}
	return r.opts.Stats()
}

func (r *Recorder) sampleStatsIfNeeded() []pcapio.InterfaceStats {
	for _, done := range r.cur.statsDone {
		if !done {
			return r.sampleStats()
		}
	}
	return nil
}

// writeStats writes the closing statistics blocks of the current file
// for the interfaces WriteInterfaceStats did not cover, from cum.
func (r *Recorder) writeStats(end int64, cum []pcapio.InterfaceStats) {
	if cum == nil {
		return
	}
	for i := range r.ifaces {
		if r.cur.statsDone[i] {
			continue
		}
		var c pcapio.InterfaceStats
		if i < len(cum) {
			c = cum[i]
		}
		if err := r.pw.WriteInterfaceStats(i, r.fileStats(i, c, end)); err != nil {
			r.log.Error("write interface statistics", "file", r.cur.path, "error", err)
		}
		r.cur.statsDone[i] = true
	}
}

// fileStats is the statistics block of interface i for the current file:
// cumulative counters cum less those at the file's start.
func (r *Recorder) fileStats(i int, cum pcapio.InterfaceStats, end int64) pcapio.InterfaceStats {
	var b pcapio.InterfaceStats
	if i < len(r.cur.base) {
		b = r.cur.base[i]
	}
	return pcapio.InterfaceStats{
		Timestamp: end, StartTime: r.cur.baseTime, EndTime: end,
		Received: delta(cum.Received, b.Received), Dropped: delta(cum.Dropped, b.Dropped), Accepted: delta(cum.Accepted, b.Accepted),
	}
}

// delta is a counter's increase; a counter that went back was reset.
func delta(now, then uint64) uint64 {
	if now < then {
		return now
	}
	return now - then
}

// acquire reserves a pool buffer for what the writer buffers next.
func (r *Recorder) acquire() bool {
	select {
	case b := <-r.free:
		r.backing = b[:0]
		return true
	default:
	}
	if r.allocated < r.opts.queueChunks {
		r.allocated++
		r.backing = make([]byte, 0, r.bufCap)
		return true
	}
	if r.opts.waitForQueue {
		r.backing = (<-r.free)[:0]
		return true
	}
	return false
}

// handoff sends what the writer buffered to the output goroutine. Without
// force it gives up (false) when no pool buffer is free; with force it
// allocates one. last ends the file; flush asks the output to push.
func (r *Recorder) handoff(last, flush, force bool) bool {
	if r.pw.Buffered() > 0 && r.backing == nil && !r.acquire() {
		if !force {
			return false
		}
		r.backing, r.forced = make([]byte, 0, r.pw.Buffered()), true
	}
	_ = r.pw.Flush() // into r.backing, through sinkWriter; cannot fail
	if len(r.backing) == 0 && !last {
		return true
	}
	it := item{f: r.cur, buf: r.backing, pooled: r.backing != nil && !r.forced,
		packets: r.bufPackets, min: r.bufMin, max: r.bufMax, last: last, flush: flush}
	if !it.pooled {
		r.unpooled.Add(1)
	}
	r.backing, r.forced, r.bufPackets = nil, false, 0
	r.out <- it // never blocks but in Close: see the capacity in NewRecorder
	return true
}

// sinkWriter is the pcapio.Writer's output: it copies into the buffer
// the Recorder reserved.
type sinkWriter struct{ r *Recorder }

func (s sinkWriter) Write(b []byte) (int, error) {
	r := s.r
	if r.backing == nil {
		r.backing, r.forced = make([]byte, 0, len(b)), true
	}
	r.backing = append(r.backing, b...)
	return len(b), nil
}
