package certmgr

import (
	"net/http"
	"sync"
)

// Transport returns the RoundTripper for a component that talks to the
// console (the poller, the job runner): template's settings (timeouts,
// pool sizes; its TLSClientConfig is replaced) with this Manager's
// TLSConfig.
//
// Connections outlive the certificate they were made with: a TLS
// connection kept alive presents the identity of its handshake. That is
// right across a renewal (the old certificate is still valid) and wrong
// after a new enrollment: a connection made while the certificate was
// expired carries none, one made before a revocation carries the revoked
// device's, and the console refuses both on every request. So the
// RoundTripper starts over, with a fresh http.Transport and the
// enrollment's CA, at its first request after a new enrollment was loaded
// from the state directory, and closes the old transport's idle
// connections; those of requests still in flight close after
// template.IdleConnTimeout.
func (m *Manager) Transport(template *http.Transport) http.RoundTripper {
	return &consoleTransport{m: m, template: template.Clone()}
}

type consoleTransport struct {
	m        *Manager
	template *http.Transport

	mu    sync.Mutex
	epoch uint64 // the Manager's enrollment epoch that t was made for
	t     *http.Transport
}

// current returns the transport of the current enrollment and its epoch.
func (c *consoleTransport) current() (*http.Transport, uint64) {
	epoch := c.m.enrollmentEpoch()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t != nil && c.epoch == epoch {
		return c.t, epoch
	}
	old := c.t
	c.t = c.template.Clone()
	c.t.TLSClientConfig = c.m.TLSConfig()
	c.epoch = epoch
	if old != nil {
		old.CloseIdleConnections()
	}
	return c.t, epoch
}

// RoundTrip sends r on the current enrollment's transport. A 401 or 403
// to a request that a new enrollment overtook in flight is the answer to
// the certificate it replaced: r is sent once more on the new transport
// (when its body can be read again), so that the caller does not take the
// new certificate for refused.
func (c *consoleTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t, epoch := c.current()
	resp, err := t.RoundTrip(r)
	if err != nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) ||
		c.m.enrollmentEpoch() == epoch {
		return resp, err
	}
	again := r.Clone(r.Context())
	if r.Body != nil && r.Body != http.NoBody {
		if r.GetBody == nil {
			return resp, nil
		}
		body, err := r.GetBody()
		if err != nil {
			return resp, nil
		}
		again.Body = body
	}
	resp.Body.Close()
	t, _ = c.current()
	return t.RoundTrip(again)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// current transport.
func (c *consoleTransport) CloseIdleConnections() {
	c.mu.Lock()
	t := c.t
	c.mu.Unlock()
	if t != nil {
		t.CloseIdleConnections()
	}
}
