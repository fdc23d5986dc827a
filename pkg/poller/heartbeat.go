package poller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
)

// heartbeatSoon asks for a heartbeat now (after an apply).
func (p *Poller) heartbeatSoon() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// heartbeats sends one at start, about every HeartbeatInterval and after
// each apply, until ctx is done.
func (p *Poller) heartbeats(ctx context.Context) {
	t := time.NewTimer(p.heartbeatDelay())
	defer t.Stop()
	for {
		p.sendHeartbeat(ctx)
		t.Reset(p.heartbeatDelay())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

// heartbeatDelay is HeartbeatInterval ±10% at random, so that agents
// started together (a fleet rebooted, a console back after an outage) do
// not keep heartbeating in step; a device goes stale only after three
// intervals without one.
func (p *Poller) heartbeatDelay() time.Duration {
	d := p.opts.HeartbeatInterval
	return d + time.Duration((p.opts.Jitter()-0.5)*0.2*float64(d))
}

// Heartbeat returns the heartbeat the poller would send now.
func (p *Poller) Heartbeat() Heartbeat {
	hb := Heartbeat{
		AppliedGeneration: -1,
		Hostname:          p.opts.Hostname,
		AgentVersion:      p.opts.AgentVersion,
		MachineID:         p.opts.MachineID,
		Interfaces:        []string{},
		Captures:          p.opts.Manager.Captures(),
		Errors:            []string{},
	}
	if hb.Captures == nil {
		hb.Captures = []agent.CaptureStatus{}
	}
	if p.opts.Interfaces != nil {
		if ifs := p.opts.Interfaces(); ifs != nil {
			hb.Interfaces = append(hb.Interfaces, ifs...)
			sort.Strings(hb.Interfaces)
		}
	}
	p.mu.Lock()
	if p.ownApplied() {
		hb.AppliedGeneration = p.applied.Generation
	}
	for _, e := range []string{p.configErr, p.applyErr} {
		if e != "" {
			hb.Errors = append(hb.Errors, e)
		}
	}
	p.mu.Unlock()
	for _, c := range hb.Captures {
		if c.LastError != "" {
			hb.Errors = append(hb.Errors, fmt.Sprintf("capture %s on %s: %s: %s", c.Name, c.Interface, c.State, oneLineString(c.LastError)))
		}
	}
	if p.opts.Certificate != nil {
		cs := p.opts.Certificate()
		hb.Certificate = HeartbeatCertificate{NotAfter: cs.NotAfter.UTC(), NeedsReenroll: cs.NeedsReenroll}
		if cs.Reason != "" {
			hb.Errors = append(hb.Errors, cs.Reason)
		}
	}
	return hb
}

func (p *Poller) sendHeartbeat(ctx context.Context) {
	hb := p.Heartbeat()
	err := p.postHeartbeat(ctx, hb)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		p.noteRefused(err)
	}
	p.mu.Lock()
	was := p.hbFailing
	p.hbFailing = err != nil
	if err == nil {
		p.lastHB = time.Now()
	}
	p.mu.Unlock()
	switch {
	case err != nil && !was:
		p.log.Warn("heartbeat failed: retrying every interval", "console", p.base.String(), "error", oneLine(err), "interval", p.opts.HeartbeatInterval)
	case err != nil:
		p.log.Debug("heartbeat failed", "error", oneLine(err))
	case was:
		p.log.Info("heartbeat accepted again", "console", p.base.String())
	}
}

func (p *Poller) postHeartbeat(ctx context.Context, hb Heartbeat) error {
	body, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("encode heartbeat: %w", err)
	}
	u := *p.base
	u.Path += HeartbeatPath
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := readBody(resp)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp.StatusCode, raw)
	}
	return nil
}
