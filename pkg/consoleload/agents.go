package consoleload

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/certmgr"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
	"github.com/ringtap/ringtap/pkg/poller"
)

// simAgent is one simulated agent: the agent's certmgr and poller, with a
// recording pcap manager.
type simAgent struct {
	i        int
	dir      string
	hostname string
	machine  string
	deviceID string
	certs    *certmgr.Manager
	poller   *poller.Poller
	mgr      *recorder
	// hb is this agent's own client for the burst phase.
	hb *http.Client

	lastHB time.Time // poller.Status().LastHeartbeat at the last count
}

var interfaces = []string{"eth0", "eth1"}

// enroll enrolls agent i with key and loads its certificate manager.
func enroll(ctx context.Context, c *consoleProc, stateRoot string, i int, key string, log *slog.Logger) (*simAgent, error) {
	a := &simAgent{i: i, dir: filepath.Join(stateRoot, fmt.Sprintf("agent-%04d", i)), hostname: fmt.Sprintf("load-%04d", i), mgr: &recorder{}}
	var mid [16]byte
	_, _ = rand.Read(mid[:])
	a.machine = hex.EncodeToString(mid[:])
	e, err := certmgr.Enroll(ctx, certmgr.EnrollConfig{
		ConsoleURL: c.agentURL, InstallKey: key, CAFingerprint: c.caPrint, StateDir: a.dir,
		Hostname: a.hostname, MachineID: a.machine, AgentVersion: "consoleload", Interfaces: interfaces, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("enroll agent %d: %w", i, err)
	}
	a.deviceID = e.DeviceID
	if a.certs, err = certmgr.New(a.dir, certmgr.Options{Logger: log}); err != nil {
		return nil, fmt.Errorf("agent %d: %w", i, err)
	}
	return a, nil
}

// newPoller makes the agent's poller.
func (a *simAgent) newPoller(wait, heartbeat time.Duration, log *slog.Logger) error {
	p, err := poller.New(poller.Options{
		ConsoleURL: a.certs.ConsoleURL(), TLSConfig: a.certs.TLSConfig(), StateDir: a.dir, Manager: a.mgr,
		Interfaces: func() []string { return interfaces },
		Certificate: func() poller.CertificateStatus {
			s := a.certs.Status()
			return poller.CertificateStatus{NotAfter: s.NotAfter, NeedsReenroll: s.NeedsReenroll, Reason: s.Reason}
		},
		Hostname: a.hostname, MachineID: a.machine, AgentVersion: "consoleload",
		Logger: log, Wait: wait, HeartbeatInterval: heartbeat,
	})
	if err != nil {
		return err
	}
	a.poller = p
	a.hb = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: a.certs.TLSConfig(), MaxIdleConnsPerHost: 1,
		DialContext: (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
	}}
	return nil
}

// heartbeat sends one heartbeat over the agent's burst client.
func (a *simAgent) heartbeat(ctx context.Context) error {
	body, err := json.Marshal(a.poller.Heartbeat())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.certs.ConsoleURL()+poller.HeartbeatPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hb.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("heartbeat: console answered %d", resp.StatusCode)
	}
	return nil
}

// heartbeatsSince counts the heartbeats the poller had accepted since the
// last call (at most one per call: call it more often than the
// heartbeat interval).
func (a *simAgent) heartbeatsSince() int {
	t := a.poller.Status().LastHeartbeat
	if t.IsZero() || t.Equal(a.lastHB) {
		return 0
	}
	a.lastHB = t
	return 1
}

// recorder is the simulated agent's pcap manager: it records when each
// set of captures arrived and reports them as running.
type recorder struct {
	mu      sync.Mutex
	applied map[string]time.Time // the first capture's name → when its set arrived
	running []agent.CaptureStatus
}

func (r *recorder) Apply(_ context.Context, ds []pcapmgr.Desired) error {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.applied == nil {
		r.applied = map[string]time.Time{}
	}
	if len(ds) > 0 {
		if _, ok := r.applied[ds[0].Name]; !ok {
			r.applied[ds[0].Name] = now
		}
	}
	r.running = r.running[:0]
	for _, d := range ds {
		r.running = append(r.running, agent.CaptureStatus{
			Name: d.Name, Interface: d.Interface, Hook: "tc", State: "running",
			Seen: 123456789, Matched: 2345678, Captured: 2345678, Bytes: 2345678 * 300, Written: 2345678,
			Files: 17, CurrentFile: filepath.Join(d.Storage.Dir, d.Name+"-00018.pcapng"), Since: now,
		})
	}
	return nil
}

func (r *recorder) Captures() []agent.CaptureStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]agent.CaptureStatus(nil), r.running...)
}

// appliedAt is when the set whose first capture is name arrived.
func (r *recorder) appliedAt(name string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.applied[name]
	return t, ok
}
