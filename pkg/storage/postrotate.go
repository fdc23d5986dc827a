package storage

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"sync"
	"time"
)

// postrotateQueue bounds the files waiting for the postrotate command;
// beyond it, a file's command is skipped and counted as a failure.
const postrotateQueue = 64

// postrotateWorkers run commands at the same time.
const postrotateWorkers = 2

// postrotator runs Options.Postrotate for finished files, as tcpdump's -z
// does (the command, then the file's path as its only argument, no
// shell), in its own goroutines with a timeout, so that neither a slow
// nor a failing command touches the capture.
type postrotator struct {
	r     *Recorder
	queue chan string
	wg    sync.WaitGroup
	once  sync.Once
}

func newPostrotator(r *Recorder) *postrotator {
	p := &postrotator{r: r}
	if r.opts.Postrotate == "" {
		return p
	}
	p.queue = make(chan string, postrotateQueue)
	for range postrotateWorkers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for path := range p.queue {
				p.run(path)
			}
		}()
	}
	return p
}

func (p *postrotator) enqueue(path string) {
	if p.queue == nil {
		return
	}
	select {
	case p.queue <- path:
	default:
		p.r.counters.postrotateFailures.Add(1)
		p.r.log.Error("postrotate: too many files waiting, skipping this one", "command", p.r.opts.Postrotate, "file", path)
	}
}

// close waits for the commands queued so far.
func (p *postrotator) close() {
	p.once.Do(func() {
		if p.queue != nil {
			close(p.queue)
		}
	})
	p.wg.Wait()
}

func (p *postrotator) run(path string) {
	o := &p.r.opts
	ctx, cancel := context.WithTimeout(context.Background(), o.PostrotateTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Postrotate, path)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	killGroup(cmd)
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	if err == nil {
		p.r.log.Debug("postrotate done", "command", o.Postrotate, "file", path, "took", time.Since(start))
		return
	}
	p.r.counters.postrotateFailures.Add(1)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		p.r.log.Error("postrotate command timed out and was killed", "command", o.Postrotate, "file", path, "timeout", o.PostrotateTimeout, "output", out.String())
		return
	}
	p.r.log.Error("postrotate command failed", "command", o.Postrotate, "file", path, "error", err, "output", out.String())
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
