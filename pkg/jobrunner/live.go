package jobrunner

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/livestream"
)

// errPushEnded ends the encoder's writes once the push's request is over.
var errPushEnded = errors.New("live push ended")

// liveEndTimeout bounds the wait for the console's answer once a push's
// body ended.
const liveEndTimeout = 5 * time.Second

// push is one live push: the encoder is the job's tee, and its stream is
// the chunked body of POST LivePath.
type push struct {
	job   Job
	enc   *livestream.Encoder
	pr    *io.PipeReader
	stop  context.CancelFunc
	done  chan struct{} // the request is over
	err   error         // its error, after done
	wrote chan struct{} // WriteTo returned
}

// live pushes the capture's live stream while the console wants it, and
// for LiveIdle after it stopped wanting it, until ctx ends.
func (rn *run) live(ctx context.Context, job Job) {
	var p *push
	var retryAt time.Time
	failures := 0
	defer func() {
		if p != nil {
			rn.endPush(p)
		}
	}()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		rn.mu.Lock()
		want := rn.liveWant || (p != nil && time.Since(rn.liveOff) < rn.r.opts.LiveIdle)
		rn.mu.Unlock()
		if p != nil {
			select {
			case <-p.done:
				if p.err != nil && want {
					failures++
					retryAt = time.Now().Add(rn.r.backoff(failures))
					rn.log.Warn("the live push ended: opening it again", "error", oneLine(p.err), "retry_at", retryAt)
				}
				rn.endPush(p)
				p = nil
			default:
				if !want {
					rn.log.Info("nobody watches the live stream any more: the push ends")
					rn.endPush(p)
					p = nil
				}
			}
		}
		if p == nil && want && time.Now().After(retryAt) {
			p = rn.startPush(ctx, job)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-rn.liveKick:
		}
	}
}

// startPush opens a push: the encoder becomes the job's tee and its
// stream the body of a POST to LivePath.
func (rn *run) startPush(ctx context.Context, job Job) *push {
	enc := livestream.NewEncoder(job.Interfaces(), livestream.EncoderOptions{Application: rn.r.opts.Application})
	pr, pw := io.Pipe()
	// The request outlives ctx by its end: the body finishes, the console
	// answers.
	pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	p := &push{job: job, enc: enc, pr: pr, stop: stop, done: make(chan struct{}), wrote: make(chan struct{})}
	job.SetTee(enc)
	go func() {
		defer close(p.wrote)
		_, err := enc.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	go func() {
		defer close(p.done)
		_, p.err = rn.r.do(pctx, request{method: http.MethodPost, path: jobapi.Path(jobapi.LivePath, rn.id),
			header: http.Header{"Content-Type": {"application/x-pcapng"}}, body: pr, length: -1})
		pr.CloseWithError(errPushEnded)
	}()
	rn.mu.Lock()
	rn.livePush = true
	rn.mu.Unlock()
	rn.log.Info("live push open: the console has a watcher")
	return p
}

// endPush detaches the encoder, ends its stream (the last statistics
// blocks go out) and waits for the console's answer, at most
// liveEndTimeout.
func (rn *run) endPush(p *push) {
	p.job.SetTee(nil)
	p.enc.Close()
	t := time.NewTimer(liveEndTimeout)
	select {
	case <-p.done:
	case <-t.C:
		rn.log.Warn("the console did not answer the end of the live push in time")
	}
	t.Stop()
	p.stop()
	<-p.done
	p.pr.CloseWithError(errPushEnded)
	<-p.wrote
	rn.mu.Lock()
	rn.livePush = false
	rn.liveDrops += p.enc.Dropped()
	rn.mu.Unlock()
	if d := p.enc.Dropped(); d > 0 {
		rn.log.Info("live push ended", "dropped_packets", d)
	}
}
