package certmgr

import (
	"fmt"
	"io"
	"strings"
)

// The certificate manager's metrics, written at scrape time by
// WriteMetrics (pass it in the agent's HTTPOptions.ExtraMetrics).
var metricDefs = []struct {
	name, typ, help string
	value           func(s Status, renewals, failures uint64) float64
}{
	{"ringtap_certmgr_cert_expiry_timestamp_seconds", "gauge",
		"When the client certificate expires (Unix time).",
		func(s Status, _, _ uint64) float64 { return float64(s.NotAfter.Unix()) }},
	{"ringtap_certmgr_cert_renew_timestamp_seconds", "gauge",
		"When the next renewal of the client certificate is due (Unix time).",
		func(s Status, _, _ uint64) float64 { return float64(s.RenewAt.Unix()) }},
	{"ringtap_certmgr_renewals_total", "counter",
		"Client certificate renewals that succeeded.",
		func(_ Status, r, _ uint64) float64 { return float64(r) }},
	{"ringtap_certmgr_renewal_failures_total", "counter",
		"Client certificate renewals that failed (each is retried with backoff).",
		func(_ Status, _, f uint64) float64 { return float64(f) }},
	{"ringtap_certmgr_ready", "gauge",
		"1 while the client certificate is valid and renewal on track; 0 when it expired, the console refused renewal, or renewal still fails 90% into its life.",
		func(s Status, _, _ uint64) float64 { return b2f(s.Ready) }},
	{"ringtap_certmgr_needs_reenroll", "gauge",
		"1 when the agent must be enrolled again (certificate expired or renewal refused).",
		func(s Status, _, _ uint64) float64 { return b2f(s.NeedsReenroll) }},
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WriteMetrics writes the manager's metrics in the Prometheus text format.
func (m *Manager) WriteMetrics(w io.Writer) {
	s := m.Status()
	m.mu.Lock()
	renewals, failures := m.renewals, m.failuresAll
	m.mu.Unlock()
	for _, d := range metricDefs {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %g\n", d.name, d.help, d.name, d.typ, d.name, d.value(s, renewals, failures))
	}
}

// MetricsTable returns the manager's metrics as a Markdown table, for the
// README.
func MetricsTable() string {
	var b strings.Builder
	b.WriteString("| metric | type | meaning |\n|---|---|---|\n")
	for _, d := range metricDefs {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", d.name, d.typ, d.help)
	}
	return b.String()
}
