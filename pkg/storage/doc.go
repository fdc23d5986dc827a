// Package storage turns a stream of captured packets into files that last:
// rotation by size, time and count, a hidden temporary name renamed once a
// file is complete and synced, compression, retention of a bounded window
// on local disk, and recovery of torn files after a crash.
//
// A Recorder is a capture's PacketWriter. What it promises:
//
//   - Every file with a final name is complete: it is written under a
//     hidden temporary name (.NAME.part, same directory, locked while
//     written), then its data is synced, its sidecar written, the
//     directory synced, the file renamed and the directory synced again.
//     Each pcapng file is a section of its own (section header and
//     interface descriptions) and ends with one interface statistics
//     block per interface for its own span: the capture's counters at
//     its end less those at its start, with isb_starttime and
//     isb_endtime.
//   - The writer never waits for the disk or the compressor. Encoded
//     buffers go through a bounded queue (16 MiB by default) to an
//     output goroutine; when it is full, packets are dropped whole and
//     counted as write drops, so every file stays valid and the queue
//     never grows.
//   - A write error (a full disk, an I/O error) never ends the capture:
//     the file is cut back to its last complete block (compressed: frame)
//     and finished, the packets not in it are counted as write drops, and
//     a new file is tried every second until writing works again.
//     WritePacket returns errors only for packets no file could hold.
//   - Compressed files (zstd, gzip) are sequences of independent frames
//     (gzip members) of at most FrameSize bytes of input, cut at packet
//     boundaries; a frame also ends after a second without new data, so
//     a crash loses at most one frame. zstd -d, gzip -d, tshark and
//     capinfos read them.
//   - Each finished file has a sidecar NAME.json with its time span
//     (earliest and latest packet, start and end), packets, size and
//     interfaces, written and renamed before the data file gets its final
//     name: a file with a final name has its sidecar, except when the
//     disk was too full to write it. ReadSidecar reads it.
//   - Retention deletes only finished files that the Recorder's own naming
//     produces (and their sidecars), oldest first by the sidecar's end
//     time (the file's mtime without a sidecar), and stops as soon as the
//     limits hold. Files that Options.Pinned reports as waiting for
//     export are kept, unless deleting them is the only way to restore
//     the minimum free space; each such deletion is a counted, logged
//     loss.
//   - At start, a Recorder recovers the temporary files its naming
//     produces that no running capture holds (Recover does the same for a
//     whole directory): every complete, verifiable packet is kept, the
//     file is finished under its final name and reported.
//   - Postrotate commands and OnFinish run outside the writer; a failing
//     or hanging command is killed after its timeout and counted.
//
// A Recorder has no Run of its own: its caller drives it (capture.Run
// calls WritePacket, Flush and WriteInterfaceStats from its writer
// goroutine), and Close ends the goroutines it started (output, finisher,
// rotation timer, retention, postrotate) after finishing the last file.
// Stats are counters for the agent's metrics (see Stats.Metrics).
package storage
