package storage

// Stats are a Recorder's counters since it started. Every field is a
// monotonic counter; the agent exports each under the metric name in its
// comment. After Close, PacketsWritten + WriteDrops is every packet
// WritePacket accepted.
type Stats struct {
	// FilesWritten: files finished under their final name, recovered
	// ones included. ringtap_storage_files_written_total
	FilesWritten uint64
	// BytesWritten: bytes of those files as on disk, counted as they are
	// committed. ringtap_storage_bytes_written_total
	BytesWritten uint64
	// PacketsWritten: packets in committed data (written to the file
	// system, for compressed files in a complete frame).
	// ringtap_storage_packets_written_total
	PacketsWritten uint64
	// Rotations: files ended to start a new one.
	// ringtap_storage_rotations_total
	Rotations uint64
	// CompressorBytesIn and CompressorBytesOut: pcap bytes into the
	// compressor and compressed bytes out of it, for complete frames;
	// their ratio is the compression ratio.
	// ringtap_storage_compressor_in_bytes_total,
	// ringtap_storage_compressor_out_bytes_total
	CompressorBytesIn, CompressorBytesOut uint64
	// WriteDrops: packets not written because of a write error or
	// because the compressor (or disk) could not keep up and the queue
	// was full. ringtap_storage_write_drops_total
	WriteDrops uint64
	// WriteErrors: files cut short by an error (write, sync, rename).
	// ringtap_storage_write_errors_total
	WriteErrors uint64
	// PostrotateFailures: postrotate commands that failed, timed out,
	// could not start or found the queue full.
	// ringtap_storage_postrotate_failures_total
	PostrotateFailures uint64
	// RetentionDeletedFiles and RetentionDeletedBytes: finished files
	// deleted by retention. ringtap_storage_retention_deleted_files_total,
	// ringtap_storage_retention_deleted_bytes_total
	RetentionDeletedFiles, RetentionDeletedBytes uint64
	// RetentionLosses: files deleted while still pinned (waiting for
	// export), because the free space could not be restored otherwise.
	// ringtap_storage_retention_losses_total
	RetentionLosses uint64
	// RecoveredFiles: torn files recovered when the Recorder started.
	// ringtap_storage_recovered_files_total
	RecoveredFiles uint64
}

// Metric is one counter of Stats under its exported name.
type Metric struct {
	Name  string
	Help  string
	Value uint64
}

// Metrics lists s as named counters, in a fixed order.
func (s Stats) Metrics() []Metric {
	return []Metric{
		{"ringtap_storage_files_written_total", "Capture files finished under their final name.", s.FilesWritten},
		{"ringtap_storage_bytes_written_total", "Bytes of capture files committed to disk.", s.BytesWritten},
		{"ringtap_storage_packets_written_total", "Packets committed to capture files.", s.PacketsWritten},
		{"ringtap_storage_rotations_total", "Capture files ended to start a new one.", s.Rotations},
		{"ringtap_storage_compressor_in_bytes_total", "Uncompressed bytes into the compressor.", s.CompressorBytesIn},
		{"ringtap_storage_compressor_out_bytes_total", "Compressed bytes out of the compressor.", s.CompressorBytesOut},
		{"ringtap_storage_write_drops_total", "Packets not written: write error, or compressor or disk too slow.", s.WriteDrops},
		{"ringtap_storage_write_errors_total", "Capture files cut short by a write, sync or rename error.", s.WriteErrors},
		{"ringtap_storage_postrotate_failures_total", "Postrotate commands that failed, timed out or could not run.", s.PostrotateFailures},
		{"ringtap_storage_retention_deleted_files_total", "Finished files deleted by retention.", s.RetentionDeletedFiles},
		{"ringtap_storage_retention_deleted_bytes_total", "Bytes of finished files deleted by retention.", s.RetentionDeletedBytes},
		{"ringtap_storage_retention_losses_total", "Files deleted by retention while still waiting for export.", s.RetentionLosses},
		{"ringtap_storage_recovered_files_total", "Torn capture files recovered at start.", s.RecoveredFiles},
	}
}
