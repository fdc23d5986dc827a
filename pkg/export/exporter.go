package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	minio "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"github.com/ringtap/ringtap/pkg/storage"
)

// Exporter uploads finished files to one destination. Its methods are
// safe for concurrent use. Files are uploaded one at a time, oldest
// first, each with Config.Concurrency parts in flight; a file that fails
// waits for its backoff while the others go on, and when the store is
// away (an outage) every upload waits for the store's backoff instead of
// each file failing in turn.
type Exporter struct {
	cfg   resolved
	core  *minio.Core
	sse   encrypt.ServerSide
	spool *spool
	log   *slog.Logger
	back  backoff
	stats counters

	enqueueMu sync.Mutex // one durable write at a time; Close waits for it

	mu      sync.Mutex
	items   map[string]*item // by entry id
	byPath  map[string]*item
	order   []*item   // oldest first
	gate    time.Time // no attempt before this: the store is away
	outages int       // consecutive outage failures, for the gate's backoff
	running bool      // Run or Drain is uploading
	closed  bool
	changed chan struct{} // closed and replaced when an item leaves

	wake      chan struct{} // cap 1: an item arrived or became due
	stop      chan struct{} // closed by Close
	loops     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// item is one pending upload. due and failures are guarded by mu; the
// rest belongs to the uploading goroutine.
type item struct {
	id       string
	e        entry
	fresh    bool // enqueued by this process and not yet attempted
	due      time.Time
	failures int // consecutive failures, for the backoff

	attempts int
	dig      *digest
	digMod   time.Time
}

// New checks cfg, builds the client, checks once that the bucket exists
// and opens the spool, reloading the files still waiting from an earlier
// run. A bad URL, template, CA file or option, a missing bucket or
// rejected credentials is an error and nothing is created on disk. A
// store that cannot be reached is an outage: New succeeds and uploads
// start when the store answers.
func New(cfg Config) (*Exporter, error) {
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	sse, err := newSSE(r)
	if err != nil {
		return nil, err
	}
	core, err := newCore(r)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.StartTimeout)
	outage, startErr := checkBucket(ctx, core, r)
	cancel()
	if startErr != nil && !outage {
		return nil, startErr
	}
	sp, err := openSpool(r.Spool)
	if err != nil {
		return nil, err
	}
	x := &Exporter{
		cfg:     r,
		core:    core,
		sse:     sse,
		spool:   sp,
		log:     r.logger,
		back:    backoff{min: r.RetryMin, max: r.RetryMax},
		items:   make(map[string]*item),
		byPath:  make(map[string]*item),
		changed: make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	loaded, err := sp.load(x.log)
	if err != nil {
		sp.close()
		return nil, err
	}
	now := time.Now()
	for _, le := range loaded {
		if _, err := os.Stat(le.e.Path); errors.Is(err, os.ErrNotExist) {
			x.lost(le.id, le.e)
			continue
		}
		x.addLocked(&item{id: le.id, e: le.e, due: now})
	}
	if outage {
		x.log.Warn("the store does not answer at start: files wait in the spool until it does",
			"endpoint", r.Endpoint, "spool", r.Spool, "err", startErr)
	}
	x.log.Info("export ready", "endpoint", r.Endpoint, "spool", r.Spool, "pending", len(x.order),
		"checksum", string(r.checksum), "part_size", r.PartSize, "concurrency", r.Concurrency)
	return x, nil
}

// lost drops the entry of a file that vanished from disk.
func (x *Exporter) lost(id string, e entry) {
	x.stats.lost.Add(1)
	x.log.Error("file vanished before upload: dropped from the spool", "path", e.Path, "key", e.Key)
	if err := x.spool.remove(id); err != nil {
		x.log.Error("spool entry of a vanished file not removed", "path", e.Path, "err", err)
	}
}

// Enqueue adds a finished file to the spool. When it returns nil the file
// is on record durably: a crash cannot lose it, and the next start
// uploads it. It does not wait for the store. The file's object key is
// decided now. Enqueueing a file that is already pending is a no-op.
func (x *Exporter) Enqueue(f storage.FinishedFile) error {
	path, err := filepath.Abs(f.Path)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", f.Path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("enqueue %s: not a regular file", path)
	}
	f.Path = path
	sidecar := f.Sidecar
	if sidecar == "" {
		sidecar = path + ".json" // where storage writes it
	}
	key, err := x.cfg.tmpl.Key(x.cfg.Prefix, x.cfg.Host, f)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", path, err)
	}
	id := entryID(key)
	e := entry{
		Version:     entryVersion,
		Key:         key,
		Path:        path,
		Size:        fi.Size(),
		PartSize:    partSizeFor(x.cfg.PartSize, fi.Size()),
		Sidecar:     sidecar,
		ContentType: contentType(path),
		Meta:        objectMeta(f, x.cfg.Host),
		Enqueued:    time.Now().UTC(),
	}

	x.enqueueMu.Lock()
	defer x.enqueueMu.Unlock()
	x.mu.Lock()
	closed, old, oldPath := x.closed, x.items[id], x.byPath[path]
	x.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case old != nil && old.e.Path != path:
		return userErr(ErrKeyConflict, nil, fmt.Sprintf("enqueue %s: object key %s is already pending for %s: make the key template tell them apart (with {capture}, {iface} or {seq})", path, key, old.e.Path))
	case old != nil || oldPath != nil:
		return nil
	}
	if err := x.spool.put(id, e); err != nil {
		return fmt.Errorf("enqueue %s: %w", path, err)
	}
	x.mu.Lock()
	x.addLocked(&item{id: id, e: e, fresh: true, due: time.Now()})
	x.mu.Unlock()
	x.stats.enqueued.Add(1)
	x.kick()
	x.log.Debug("enqueued", "path", path, "key", key, "size", e.Size)
	return nil
}

func (x *Exporter) addLocked(it *item) {
	x.items[it.id] = it
	x.byPath[it.e.Path] = it
	x.order = append(x.order, it)
	x.stats.spoolFiles.Add(1)
	x.stats.spoolBytes.Add(it.e.Size)
}

func (x *Exporter) dropLocked(it *item) {
	delete(x.items, it.id)
	if x.byPath[it.e.Path] == it {
		delete(x.byPath, it.e.Path)
	}
	for i, o := range x.order {
		if o == it {
			x.order = append(x.order[:i], x.order[i+1:]...)
			break
		}
	}
	x.stats.spoolFiles.Add(-1)
	x.stats.spoolBytes.Add(-it.e.Size)
	close(x.changed)
	x.changed = make(chan struct{})
}

func (x *Exporter) kick() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// Pending reports whether path is waiting for upload (retention must keep
// it).
func (x *Exporter) Pending(path string) bool {
	if p, err := filepath.Abs(path); err == nil {
		path = p
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.byPath[path] != nil
}

// Location is the URL of the object a pending path is uploaded to,
// s3://BUCKET/KEY; false when path is not pending. The key is decided by
// Enqueue and kept across restarts, so it is where the file arrives.
func (x *Exporter) Location(path string) (string, bool) {
	if p, err := filepath.Abs(path); err == nil {
		path = p
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	it := x.byPath[path]
	if it == nil {
		return "", false
	}
	return "s3://" + x.cfg.Bucket + "/" + it.e.Key, true
}

// Stats returns the counters; see Stats.
func (x *Exporter) Stats() Stats { return x.stats.snapshot() }

// Run uploads until ctx ends or the exporter is closed, then returns nil
// once its goroutines have ended. An upload in flight is interrupted (its
// multipart upload aborted) and stays in the spool.
func (x *Exporter) Run(ctx context.Context) error {
	x.mu.Lock()
	switch {
	case x.closed:
		x.mu.Unlock()
		return ErrClosed
	case x.running:
		x.mu.Unlock()
		return ErrRunning
	}
	x.running = true
	x.loops.Add(1)
	x.mu.Unlock()
	defer x.endLoop()
	x.loop(ctx, false)
	return nil
}

func (x *Exporter) endLoop() {
	x.mu.Lock()
	x.running = false
	x.mu.Unlock()
	x.loops.Done()
}

// Drain is the graceful stop: it retries every pending file now (backoff
// reset) and keeps uploading until the spool is empty or ctx ends, then
// returns how many files remain; they wait in the spool for the next
// start. The error is nil when none remain. Drain uploads by itself when
// Run is not running, and waits for Run's uploads when it is.
func (x *Exporter) Drain(ctx context.Context) (remaining int, err error) {
	x.mu.Lock()
	if x.closed {
		n := len(x.order)
		x.mu.Unlock()
		return n, ErrClosed
	}
	now := time.Now()
	for _, it := range x.order {
		it.due, it.failures = now, 0
	}
	x.gate, x.outages = time.Time{}, 0
	own := !x.running
	if own {
		x.running = true
		x.loops.Add(1)
	}
	x.mu.Unlock()
	x.kick()

	if own {
		func() {
			defer x.endLoop()
			x.loop(ctx, true)
		}()
	} else {
	wait:
		for {
			x.mu.Lock()
			n, changed := len(x.order), x.changed
			x.mu.Unlock()
			if n == 0 {
				break
			}
			select {
			case <-changed:
			case <-ctx.Done():
				break wait
			case <-x.stop:
				break wait
			}
		}
	}
	x.mu.Lock()
	remaining = len(x.order)
	x.mu.Unlock()
	if remaining == 0 {
		return 0, nil
	}
	x.log.Warn("files remain in the spool for the next start", "files", remaining, "spool", x.cfg.Spool)
	if err = ctx.Err(); err == nil {
		err = ErrClosed
	}
	return remaining, fmt.Errorf("drain: %d files remain in spool %s: %w", remaining, x.cfg.Spool, err)
}

// Close stops uploading, waits for Run and Drain to return and releases
// the spool. Pending files stay in the spool. Calling it again is a no-op.
func (x *Exporter) Close() error {
	x.closeOnce.Do(func() {
		x.enqueueMu.Lock()
		x.mu.Lock()
		x.closed = true
		x.mu.Unlock()
		x.enqueueMu.Unlock()
		close(x.stop)
		x.loops.Wait()
		x.closeErr = x.spool.close()
	})
	return x.closeErr
}

// loop uploads due items one at a time until ctx ends or the exporter
// stops, or with untilEmpty when nothing is pending.
func (x *Exporter) loop(ctx context.Context, untilEmpty bool) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-x.stop:
			cancel()
		case <-ctx.Done():
		}
	})
	defer wg.Wait()
	defer cancel()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		x.mu.Lock()
		if untilEmpty && len(x.order) == 0 {
			x.mu.Unlock()
			return
		}
		it, wait := x.nextLocked(time.Now())
		x.mu.Unlock()
		if it != nil {
			x.attempt(ctx, it)
			continue
		}
		if wait < 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case <-x.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// nextLocked is the oldest due item, or how long until one is due (-1:
// none pending).
func (x *Exporter) nextLocked(now time.Time) (*item, time.Duration) {
	if now.Before(x.gate) {
		return nil, x.gate.Sub(now)
	}
	wait := time.Duration(-1)
	for _, it := range x.order {
		if !it.due.After(now) {
			return it, 0
		}
		if d := it.due.Sub(now); wait < 0 || d < wait {
			wait = d
		}
	}
	return nil, wait
}

func (x *Exporter) attempt(ctx context.Context, it *item) {
	it.attempts++
	if it.attempts > 1 {
		x.stats.retries.Add(1)
	}
	start := time.Now()
	res, err := x.upload(ctx, it)
	it.fresh = false
	if err != nil && ctx.Err() != nil {
		x.log.Info("upload interrupted by stop: the file stays in the spool", "path", it.e.Path, "key", it.e.Key)
		return
	}
	if err != nil {
		x.failed(it, err)
		return
	}
	x.done(it, res, time.Since(start))
}

func (x *Exporter) failed(it *item, err error) {
	k := classify(err)
	x.stats.failures.Add(1)
	if k == kindMismatch {
		x.stats.mismatches.Add(1)
	}
	now := time.Now()
	x.mu.Lock()
	var wait time.Duration
	if k == kindOutage {
		x.outages++
		wait = x.back.delay(x.outages)
		x.gate = now.Add(wait)
		it.due = x.gate
	} else {
		it.failures++
		wait = x.back.delay(it.failures)
		it.due = now.Add(wait)
	}
	x.mu.Unlock()
	attrs := []any{"path", it.e.Path, "key", it.e.Key, "attempt", it.attempts,
		"reason", k.String(), "retry_in", wait.Round(time.Millisecond), "err", err}
	if k == kindOutage {
		x.log.Warn("upload failed: the store is away, retrying", attrs...)
		return
	}
	x.log.Error("upload failed, retrying", attrs...)
}

func (x *Exporter) done(it *item, res result, took time.Duration) {
	x.mu.Lock()
	x.gate, x.outages = time.Time{}, 0
	x.mu.Unlock()

	rmErr := x.spool.remove(it.id)
	switch res {
	case resUploaded:
		x.stats.uploads.Add(1)
		x.stats.uploadBytes.Add(uint64(it.e.Size))
		mbps := float64(it.e.Size) / 1e6 / max(took.Seconds(), 1e-9)
		x.log.Info("uploaded", "path", it.e.Path, "key", it.e.Key, "size", it.e.Size,
			"took", took.Round(time.Millisecond), "mb_per_s", strconv.FormatFloat(mbps, 'f', 1, 64))
	case resPresent:
		x.stats.present.Add(1)
		x.log.Info("already in the store with the same size and checksum: not uploaded again", "path", it.e.Path, "key", it.e.Key)
	case resLost:
		x.stats.lost.Add(1)
		x.log.Error("file vanished before upload: dropped from the spool", "path", it.e.Path, "key", it.e.Key)
	}
	switch {
	case rmErr != nil:
		// The object is safe; the next start finds it present.
		x.log.Error("spool entry not removed after upload; the local file is kept", "path", it.e.Path, "err", rmErr)
	case x.cfg.DeleteAfterUpload && res != resLost:
		for _, p := range []string{it.e.Path, it.e.Sidecar} {
			if p == "" {
				continue
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				x.log.Error("local copy not removed after upload", "path", p, "err", err)
			}
		}
	}
	x.mu.Lock()
	x.dropLocked(it)
	x.mu.Unlock()
}

// contentType is by extension, so that browsers and tools that fetch the
// object know what it is.
func contentType(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".pcapng":
		return "application/x-pcapng"
	case ".pcap":
		return "application/vnd.tcpdump.pcap"
	case ".zst":
		return "application/zstd"
	case ".gz":
		return "application/gzip"
	}
	return "application/octet-stream"
}

// objectMeta is the object's user metadata (x-amz-meta-ringtap-*): what a
// flow index needs without opening the object.
func objectMeta(f storage.FinishedFile, host string) map[string]string {
	m := map[string]string{
		"ringtap-host":    url.PathEscape(host),
		"ringtap-seq":     strconv.FormatUint(f.Seq, 10),
		"ringtap-packets": strconv.FormatUint(f.Packets, 10),
	}
	if f.Capture != "" {
		m["ringtap-capture"] = url.PathEscape(f.Capture)
	}
	if len(f.Interfaces) > 0 {
		m["ringtap-interfaces"] = url.PathEscape(strings.Join(f.Interfaces, ","))
	}
	if !f.Start.IsZero() {
		m["ringtap-start"] = f.Start.UTC().Format(time.RFC3339Nano)
	}
	if !f.First.IsZero() {
		m["ringtap-first"] = f.First.UTC().Format(time.RFC3339Nano)
		m["ringtap-last"] = f.Last.UTC().Format(time.RFC3339Nano)
	}
	if f.Compression != "" {
		m["ringtap-compression"] = f.Compression
	}
	if f.Format != "" {
		m["ringtap-format"] = f.Format
	}
	if f.Recovered {
		m["ringtap-recovered"] = "true"
	}
	return m
}
