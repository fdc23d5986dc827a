package storage

import "time"

// FinishedFile describes one complete capture file: written, synced and
// renamed to its final name. It is what a Recorder hands to OnFinish and
// what the exporter (pkg/export) uploads.
type FinishedFile struct {
	// Path is the final path on disk (the hidden temporary name is gone).
	Path string
	// Size is the file's size in bytes, as on disk (compressed if
	// compressed).
	Size int64
	// Packets is the number of packets in the file.
	Packets uint64
	// First and Last are the earliest and latest packet timestamps (the
	// file's time span; packets from different CPUs may interleave out of
	// order); both are zero for a file without packets.
	First, Last time.Time
	// Start is when the file was opened (the template's {start}).
	Start time.Time
	// Seq is the file's sequence number in its recorder, from 0.
	Seq uint64
	// Interfaces are the captured interfaces' names, in file order.
	Interfaces []string
	// Capture is the capture's name (the agent's captures have one; the
	// CLI's is empty).
	Capture string
	// Compression is "", "zstd" or "gzip".
	Compression string

	// End is when the file was finished (for a recovered file, its last
	// packet or last write).
	End time.Time
	// Format is "pcapng" or "pcap".
	Format string
	// Sidecar is the path of the JSON sidecar holding these fields, ""
	// if it could not be written (a full disk).
	Sidecar string
	// Recovered marks a file finished by recovery after a crash; it has
	// no interface statistics at its end.
	Recovered bool
}
