package pcapmgr

import (
	"sort"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/capture"
)

// counters accumulates capture.Counters.
type counters struct{ capture.Counters }

func (c *counters) add(o capture.Counters) {
	c.Seen += o.Seen
	c.Matched += o.Matched
	c.Captured += o.Captured
	c.Bytes += o.Bytes
	c.Dropped += o.Dropped
	c.CopyFailed += o.CopyFailed
	c.FilterFailed += o.FilterFailed
}

// Captures reports every desired capture: its state, its counters over its
// whole life (capture runs that ended included) and its current file. It
// implements agent.StatusSource.
func (m *Manager) Captures() []agent.CaptureStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]agent.CaptureStatus, 0, len(m.desired))
	for name, d := range m.desired {
		cs := agent.CaptureStatus{Name: name, Interface: d.Interface, State: StateStarting}
		if e, ok := m.entries[name]; ok && e.d.Key == d.Key {
			cs.State, cs.Hook, cs.LastError, cs.Since = e.state, e.hook, e.lastErr, e.since
			acc := e.acc
			written, files, wdrops := e.recDone.PacketsWritten, e.recDone.FilesWritten, e.recDone.WriteDrops
			if e.cap != nil {
				if st, err := e.cap.Stats(); err == nil {
					for _, is := range st.Interfaces {
						acc.add(is.Total())
					}
				}
			}
			if e.rec != nil {
				rs := e.rec.Stats()
				written += rs.PacketsWritten
				files += rs.FilesWritten
				wdrops += rs.WriteDrops
				cs.CurrentFile = e.rec.CurrentFile()
			}
			cs.Seen, cs.Matched, cs.Captured, cs.Bytes = acc.Seen, acc.Matched, acc.Captured, acc.Bytes
			cs.RingDrops, cs.CopyFailures = acc.Dropped, acc.CopyFailed
			cs.Written, cs.Files, cs.WriteDrops = written, files, wdrops
		}
		out = append(out, cs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
