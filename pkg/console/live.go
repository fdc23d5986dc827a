package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/livestream"
)

// liveBufferBytes is each live client's queue: what a client may fall
// behind by before it loses packets.
const liveBufferBytes = livestream.DefaultBufferBytes

// liveKey names a run.
type liveKey struct {
	job    int64
	device string
}

// liveRuns holds the live stream hub of each run that has a client or a
// push, created on demand, and forgotten when the last of them leaves or
// the run ends.
type liveRuns struct {
	mu   sync.Mutex
	hubs map[liveKey]*liveHub
}

// liveHub is a hub with the handlers using it.
type liveHub struct {
	hub   *livestream.Hub
	users int
}

func newLiveRuns() *liveRuns { return &liveRuns{hubs: map[liveKey]*liveHub{}} }

// acquire returns the run's hub, created if need be; release gives it
// back.
func (l *liveRuns) acquire(job int64, device string) *livestream.Hub {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := liveKey{job, device}
	h := l.hubs[k]
	if h == nil {
		h = &liveHub{hub: livestream.NewHub()}
		l.hubs[k] = h
	}
	h.users++
	return h.hub
}

// release is the end of an acquire; the last user forgets the hub.
func (l *liveRuns) release(job int64, device string, hub *livestream.Hub) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := liveKey{job, device}
	if h := l.hubs[k]; h != nil && h.hub == hub {
		if h.users--; h.users == 0 {
			delete(l.hubs, k)
		}
	}
}

// wanted reports whether a client waits for the run's live stream: the
// agent's RunControl.LiveWanted.
func (l *liveRuns) wanted(job int64, device string) bool {
	l.mu.Lock()
	h := l.hubs[liveKey{job, device}]
	l.mu.Unlock()
	return h != nil && h.hub.Subscribers() > 0
}

// end says the run ended: its push stops, its clients get the rest of
// their queue and their answer ends. Call it after the store holds the
// terminal state (a client that comes later is refused by its check).
func (l *liveRuns) end(job int64, device string) {
	l.mu.Lock()
	k := liveKey{job, device}
	h := l.hubs[k]
	delete(l.hubs, k)
	l.mu.Unlock()
	if h != nil {
		h.hub.End()
	}
}

// liveClient answers GET /api/v1/jobs/{id}/runs/{device}/live (admin):
// the run's pcapng stream, from the agent's header on, until the run
// ends or the client goes.
func (s *Server) liveClient(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	dev := r.PathValue("device")
	// Subscribe before checking the run: a run that ends after the check
	// ends this hub (liveRuns.end), and one that ended before is refused.
	hub := s.live.acquire(id, dev)
	defer s.live.release(id, dev, hub)
	sub := hub.Subscribe(liveBufferBytes)
	defer sub.Close()

	j, ok := s.lookupJob(w, r)
	if !ok {
		return
	}
	run, ok := runOf(j, dev)
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "job %d has no run on device %q: GET /api/v1/jobs/%d lists its runs", id, dev, id)
		return
	case run.State.Terminal():
		writeError(w, http.StatusConflict, "run %d has ended: download /api/v1/jobs/%d/runs/%s/pcap instead", id, id, dev)
		return
	}

	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		s.log.Warn("live stream: cannot clear the write deadline", "job", id, "device", dev, "err", err)
	}
	stopClient := context.AfterFunc(r.Context(), sub.Close)
	defer stopClient()
	stopServer := context.AfterFunc(s.polls, sub.Close) // the console stops
	defer stopServer()
	h := w.Header()
	h.Set("Content-Type", "application/x-pcapng")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush() // the client knows it is connected before the agent pushes

	s.log.Info("live client connected", "job", id, "device", dev, "clients", hub.Subscribers())
	n, err := sub.WriteTo(w)
	if err != nil && !errors.Is(err, livestream.ErrClosed) {
		s.log.Info("live client write", "job", id, "device", dev, "err", err)
	}
	s.log.Info("live client done", "job", id, "device", dev, "bytes", n, "dropped", sub.Dropped())
}

// livePush answers POST /api/v1/agent/jobs/{id}/live (agent): the body is
// the run's pcapng stream, fanned out to the run's live clients. A newer
// push of the run ends this one.
func (s *Server) livePush(w http.ResponseWriter, r *http.Request, d device) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusNotFound, "no job %q: job ids are numbers", v)
		return
	}
	hub := s.live.acquire(id, d.ID)
	defer s.live.release(id, d.ID, hub)

	j, err := s.cfg.Store.GetJob(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no job %d", id)
		return
	} else if err != nil {
		s.log.Error("live push: get job", "job", id, "device_id", d.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the console cannot read the job now: try again")
		return
	}
	run, ok := runOf(j, d.ID)
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "job %d has no run on device %s", id, d.ID)
		return
	case run.State.Terminal():
		writeError(w, http.StatusGone, "run %d has ended (%s): stop the live push", id, run.State)
		return
	case run.State == store.RunQueued:
		writeError(w, http.StatusConflict, "run %d is queued: claim it before pushing its live stream", id)
		return
	}

	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		s.log.Warn("live push: cannot clear the read deadline", "job", id, "device_id", d.ID, "err", err)
	}
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		s.log.Warn("live push: cannot clear the write deadline", "job", id, "device_id", d.ID, "err", err)
	}
	s.log.Info("live push started", "job", id, "device_id", d.ID, "clients", hub.Subscribers())
	err = hub.Publish(r.Context(), pushBody{r.Body, rc})
	s.log.Info("live push ended", "job", id, "device_id", d.ID, "err", err)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, livestream.ErrReplaced):
		writeError(w, http.StatusConflict, "a newer live push of run %d replaced this one", id)
	case errors.Is(err, livestream.ErrEnded):
		writeError(w, http.StatusGone, "run %d has ended: stop the live push", id)
	case errors.Is(err, livestream.ErrFormat):
		writeError(w, http.StatusBadRequest, "%v", err)
	case r.Context().Err() != nil:
		// The agent went away, or the console stops; nobody reads an answer.
	default:
		writeError(w, http.StatusBadRequest, "%v", err)
	}
}

// pushBody is a push's request body that Publish can unblock, through
// the response controller's read deadline, when a newer push replaces it.
type pushBody struct {
	io.Reader
	rc *http.ResponseController
}

func (b pushBody) SetReadDeadline(t time.Time) error { return b.rc.SetReadDeadline(t) }

// runOf returns the run of device in j.
func runOf(j store.Job, device string) (store.Run, bool) {
	for _, r := range j.Runs {
		if r.Device == device {
			return r, true
		}
	}
	return store.Run{}, false
}
