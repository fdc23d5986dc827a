package pcapmgr

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// metricDef is one metric family the manager writes.
type metricDef struct{ name, typ, labels, help string }

// Metrics the manager writes besides the per-capture ones of pkg/agent;
// MetricsTable lists them (for the README's metrics table). exportMetrics
// are written per capture with an exporter, in this order (see
// WriteMetrics); interfaceMetrics per interface.
var (
	exportMetrics = []metricDef{
		{"ringtap_export_uploads_total", "counter", "capture", "Files of the capture uploaded to the object store and verified."},
		{"ringtap_export_upload_bytes_total", "counter", "capture", "Bytes of those files."},
		{"ringtap_export_upload_failures_total", "counter", "capture", "Upload attempts that failed (each is retried)."},
		{"ringtap_export_spool_files", "gauge", "capture", "Files of the capture waiting for upload now."},
		{"ringtap_export_spool_bytes", "gauge", "capture", "Bytes of the files waiting for upload now."},
		{"ringtap_export_restarts_total", "counter", "capture", "Times the capture's uploads were run again after they failed (returned an error, returned early or panicked)."},
	}
	interfaceMetrics = []metricDef{
		{"ringtap_interface_ring_records_total", "counter", "interface, program", "Records a program of the interface wrote to its rings: one per frame, however many captures matched it."},
		{"ringtap_interface_ring_drops_total", "counter", "interface, program", "Records a program of the interface lost because a ring was full."},
		{"ringtap_interface_ring_bytes", "gauge", "interface", "Kernel memory of the interface's rings."},
		{"ringtap_interface_captures", "gauge", "interface", "Captures sharing the interface's programs."},
	}
)

// MetricsTable returns the manager's metrics as a Markdown table, for the
// README.
func MetricsTable() string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, d := range append(append([]metricDef(nil), exportMetrics...), interfaceMetrics...) {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", d.name, d.typ, d.labels, d.help)
	}
	return b.String()
}

func (d metricDef) writeHeader(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", d.name, d.help, d.name, d.typ)
}

// WriteMetrics writes the exporters' counters per capture and the shared
// interfaces' counters per program, in Prometheus text format (for
// agent.HTTPOptions.ExtraMetrics).
func (m *Manager) WriteMetrics(w io.Writer) {
	type exp struct {
		name   string
		values [6]float64 // as exportMetrics
	}
	var exps []exp
	m.mu.Lock()
	for name, e := range m.entries {
		if e.exp == nil {
			continue
		}
		s := e.exp.x.Stats()
		exps = append(exps, exp{name, [6]float64{float64(s.Uploads), float64(s.UploadBytes), float64(s.UploadFailures),
			float64(s.SpoolFiles), float64(s.SpoolBytes), float64(e.exp.restarts.Load())}})
	}
	m.mu.Unlock()
	sort.Slice(exps, func(i, j int) bool { return exps[i].name < exps[j].name })
	if len(exps) > 0 {
		for i, d := range exportMetrics {
			d.writeHeader(w)
			for _, x := range exps {
				fmt.Fprintf(w, "%s{capture=\"%s\"} %g\n", d.name, escape(x.name), x.values[i])
			}
		}
	}
	if m.opts.Engine == nil {
		return
	}
	ifs := m.opts.Engine.Interfaces()
	sort.Slice(ifs, func(i, j int) bool { return ifs[i].Name < ifs[j].Name })
	if len(ifs) == 0 {
		return
	}
	progs := []string{"xdp", "tc_ingress", "tc_egress"}
	for i, d := range interfaceMetrics {
		d.writeHeader(w)
		for _, in := range ifs {
			switch i {
			case 0, 1:
				for k, p := range progs {
					v := in.Records[k]
					if i == 1 {
						v = in.RingDrops[k]
					}
					fmt.Fprintf(w, "%s{interface=\"%s\",program=\"%s\"} %d\n", d.name, escape(in.Name), p, v)
				}
			case 2:
				fmt.Fprintf(w, "%s{interface=\"%s\"} %d\n", d.name, escape(in.Name), in.RingBytes)
			case 3:
				fmt.Fprintf(w, "%s{interface=\"%s\"} %d\n", d.name, escape(in.Name), in.Captures)
			}
		}
	}
}

func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
