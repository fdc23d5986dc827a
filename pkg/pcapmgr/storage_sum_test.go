package pcapmgr

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/storage"
)

// TestAddStorageSumsEveryCounter: a capture's counters over its runs lose
// no field of storage.Stats, also one added later.
func TestAddStorageSumsEveryCounter(t *testing.T) {
	var a, b storage.Stats
	va, vb := reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem()
	for i := range va.NumField() {
		va.Field(i).SetUint(uint64(i + 1))
		vb.Field(i).SetUint(uint64(100 * (i + 1)))
	}
	sum := reflect.ValueOf(addStorage(a, b))
	for i := range sum.NumField() {
		if got, want := sum.Field(i).Uint(), uint64(101*(i+1)); got != want {
			t.Errorf("addStorage: %s = %d, want %d", sum.Type().Field(i).Name, got, want)
		}
	}
}

// TestWriteStorageMetrics: a capture's recorder counters over its ended
// runs are on /metrics under their names, labelled with the capture.
func TestWriteStorageMetrics(t *testing.T) {
	f := &fakeUploader{run: func(ctx context.Context, _ int) error { <-ctx.Done(); return nil }}
	m, e, _ := mustManagerWithCapture(t, time.Second, time.Minute, f)
	m.mu.Lock()
	e.recDone = storage.Stats{BytesWritten: 4096, Rotations: 3, CompressorBytesIn: 9000, CompressorBytesOut: 3000,
		WriteErrors: 1, PostrotateFailures: 2, RetentionDeletedFiles: 5, RetentionDeletedBytes: 50000, RetentionLosses: 1, RecoveredFiles: 7}
	m.mu.Unlock()
	out := writeMetrics(m)
	for _, want := range []string{
		`ringtap_storage_bytes_written_total{capture="web"} 4096`,
		`ringtap_storage_rotations_total{capture="web"} 3`,
		`ringtap_storage_compressor_in_bytes_total{capture="web"} 9000`,
		`ringtap_storage_compressor_out_bytes_total{capture="web"} 3000`,
		`ringtap_storage_write_errors_total{capture="web"} 1`,
		`ringtap_storage_postrotate_failures_total{capture="web"} 2`,
		`ringtap_storage_retention_deleted_files_total{capture="web"} 5`,
		`ringtap_storage_retention_deleted_bytes_total{capture="web"} 50000`,
		`ringtap_storage_retention_losses_total{capture="web"} 1`,
		`ringtap_storage_recovered_files_total{capture="web"} 7`,
		`ringtap_export_files_lost_total{capture="web"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
}
