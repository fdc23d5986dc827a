package export

import "sync/atomic"

// Stats are the exporter's counters, read with Stats from any goroutine.
// The agent exports them as Prometheus metrics:
//
//	ringtap_export_enqueued_total            Enqueued
//	ringtap_export_uploads_total             Uploads
//	ringtap_export_upload_bytes_total        UploadBytes
//	ringtap_export_upload_failures_total     UploadFailures
//	ringtap_export_retries_total             Retries
//	ringtap_export_checksum_mismatches_total ChecksumMismatches
//	ringtap_export_aborted_uploads_total     AbortedUploads
//	ringtap_export_already_present_total     AlreadyPresent
//	ringtap_export_files_lost_total          FilesLost
//	ringtap_export_spool_files               SpoolFiles (gauge)
//	ringtap_export_spool_bytes               SpoolBytes (gauge)
type Stats struct {
	// Enqueued counts files accepted by Enqueue (not those reloaded from
	// the spool at start).
	Enqueued uint64
	// Uploads and UploadBytes count objects this exporter uploaded and
	// verified, and their size.
	Uploads     uint64
	UploadBytes uint64
	// UploadFailures counts attempts that failed, for any reason
	// (including checksum mismatches); Retries counts attempts after a
	// file's first.
	UploadFailures uint64
	Retries        uint64
	// ChecksumMismatches counts objects whose size or checksum, as the
	// store reported them after an upload, did not match the file.
	ChecksumMismatches uint64
	// AbortedUploads counts incomplete multipart uploads aborted: an
	// attempt's own after it failed, and leftovers found before an
	// attempt.
	AbortedUploads uint64
	// AlreadyPresent counts files found in the store with the same size
	// and checksum before uploading (a crash after the store confirmed,
	// before the spool entry was removed): done without an upload.
	AlreadyPresent uint64
	// FilesLost counts spool entries dropped because their file had
	// vanished from disk.
	FilesLost uint64
	// SpoolFiles and SpoolBytes are the files waiting now, and their size.
	SpoolFiles int64
	SpoolBytes int64
}

type counters struct {
	enqueued, uploads, uploadBytes, failures, retries atomic.Uint64
	mismatches, aborted, present, lost                atomic.Uint64
	spoolFiles, spoolBytes                            atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Enqueued:           c.enqueued.Load(),
		Uploads:            c.uploads.Load(),
		UploadBytes:        c.uploadBytes.Load(),
		UploadFailures:     c.failures.Load(),
		Retries:            c.retries.Load(),
		ChecksumMismatches: c.mismatches.Load(),
		AbortedUploads:     c.aborted.Load(),
		AlreadyPresent:     c.present.Load(),
		FilesLost:          c.lost.Load(),
		SpoolFiles:         c.spoolFiles.Load(),
		SpoolBytes:         c.spoolBytes.Load(),
	}
}
