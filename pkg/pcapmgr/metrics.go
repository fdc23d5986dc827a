package pcapmgr

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ringtap/ringtap/pkg/storage"
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
		{"ringtap_export_enqueued_total", "counter", "capture", "Finished files of the capture handed to the spool for upload."},
		{"ringtap_export_retries_total", "counter", "capture", "Upload attempts after a file's first."},
		{"ringtap_export_checksum_mismatches_total", "counter", "capture", "Objects whose size or checksum, as the store reported them after an upload, did not match the file (uploaded again)."},
		{"ringtap_export_aborted_uploads_total", "counter", "capture", "Incomplete multipart uploads aborted (a failed attempt's own, or leftovers found before an attempt)."},
		{"ringtap_export_already_present_total", "counter", "capture", "Files found in the store, same size and checksum, before uploading them (a crash after the store confirmed): done without an upload."},
		{"ringtap_export_files_lost_total", "counter", "capture", "Spool entries dropped because their file vanished from disk before its upload."},
	}
	// storageMetrics are written per capture; the recorder's files,
	// packets written and write drops are ringtap_capture_files_total,
	// ringtap_capture_packets_written_total and
	// ringtap_capture_write_drops_total (pkg/agent).
	storageMetrics = []struct {
		metricDef
		value func(storage.Stats) uint64
	}{
		{metricDef{"ringtap_storage_bytes_written_total", "counter", "capture", "Bytes of the capture's files as on disk, counted as they are committed."},
			func(s storage.Stats) uint64 { return s.BytesWritten }},
		{metricDef{"ringtap_storage_rotations_total", "counter", "capture", "Files ended to start a new one."},
			func(s storage.Stats) uint64 { return s.Rotations }},
		{metricDef{"ringtap_storage_compressor_in_bytes_total", "counter", "capture", "Uncompressed bytes into the compressor (with out_bytes: the compression ratio)."},
			func(s storage.Stats) uint64 { return s.CompressorBytesIn }},
		{metricDef{"ringtap_storage_compressor_out_bytes_total", "counter", "capture", "Compressed bytes out of the compressor."},
			func(s storage.Stats) uint64 { return s.CompressorBytesOut }},
		{metricDef{"ringtap_storage_write_errors_total", "counter", "capture", "Files cut short by a write, sync or rename error (capture goes on in a new file)."},
			func(s storage.Stats) uint64 { return s.WriteErrors }},
		{metricDef{"ringtap_storage_postrotate_failures_total", "counter", "capture", "Postrotate commands that failed, timed out or could not run."},
			func(s storage.Stats) uint64 { return s.PostrotateFailures }},
		{metricDef{"ringtap_storage_retention_deleted_files_total", "counter", "capture", "Finished files deleted by retention."},
			func(s storage.Stats) uint64 { return s.RetentionDeletedFiles }},
		{metricDef{"ringtap_storage_retention_deleted_bytes_total", "counter", "capture", "Bytes of the finished files deleted by retention."},
			func(s storage.Stats) uint64 { return s.RetentionDeletedBytes }},
		{metricDef{"ringtap_storage_retention_losses_total", "counter", "capture", "Files deleted by retention while still waiting for upload (the disk could not be kept free otherwise)."},
			func(s storage.Stats) uint64 { return s.RetentionLosses }},
		{metricDef{"ringtap_storage_recovered_files_total", "counter", "capture", "Torn files of the capture recovered when its recorder started."},
			func(s storage.Stats) uint64 { return s.RecoveredFiles }},
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
	defs := append([]metricDef(nil), exportMetrics...)
	for _, d := range storageMetrics {
		defs = append(defs, d.metricDef)
	}
	for _, d := range append(defs, interfaceMetrics...) {
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
		values []float64 // as exportMetrics
	}
	type rec struct {
		name string
		st   storage.Stats
	}
	var exps []exp
	var recs []rec
	m.mu.Lock()
	for name, e := range m.entries {
		st := e.recDone
		if e.rec != nil {
			st = addStorage(st, e.rec.Stats())
		}
		recs = append(recs, rec{name, st})
		if e.exp == nil {
			continue
		}
		s := e.exp.x.Stats()
		exps = append(exps, exp{name, []float64{float64(s.Uploads), float64(s.UploadBytes), float64(s.UploadFailures),
			float64(s.SpoolFiles), float64(s.SpoolBytes), float64(e.exp.restarts.Load()),
			float64(s.Enqueued), float64(s.Retries), float64(s.ChecksumMismatches), float64(s.AbortedUploads),
			float64(s.AlreadyPresent), float64(s.FilesLost)}})
	}
	m.mu.Unlock()
	sort.Slice(exps, func(i, j int) bool { return exps[i].name < exps[j].name })
	sort.Slice(recs, func(i, j int) bool { return recs[i].name < recs[j].name })
	if len(recs) > 0 {
		for _, d := range storageMetrics {
			d.writeHeader(w)
			for _, r := range recs {
				fmt.Fprintf(w, "%s{capture=\"%s\"} %d\n", d.name, escape(r.name), d.value(r.st))
			}
		}
	}
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
