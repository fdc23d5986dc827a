// Package export uploads finished capture files to an S3-compatible object
// store (AWS S3, MinIO, Ceph RGW, ...) through a durable local spool.
//
// What it promises:
//
//   - Durability: once Enqueue has returned, a crash or a power cut cannot
//     lose the file. The spool keeps one small entry file per pending
//     upload (written to a temporary name, synced, renamed, directory
//     synced) and removes it only after the store has confirmed the
//     object and the exporter has verified its size and checksum.
//   - Exactly once: the object key is decided at Enqueue and stored in the
//     entry, so every retry, also after a restart, writes the same key.
//     Before (re)uploading, an object that is already there with the same
//     size and checksum counts as done (a crash between the store's
//     confirmation and the entry's removal), and incomplete multipart
//     uploads for the key are aborted, so none is left pending.
//   - Outages: a store that is down or unreachable (also at start) only
//     delays uploads. Every failed attempt is retried with exponential
//     backoff and jitter; a file that keeps failing does not hold up the
//     others. An upload that sends nothing for a while (a half-open
//     connection) is failed and retried rather than waited on.
//   - Bounded memory: files are uploaded with their known size straight
//     from the file (io.SectionReader per part, no part buffer), so memory
//     does not grow with the part size or the file size.
//
// One Exporter serves any number of captures: the CLI's `-w s3://...` and
// the agent's exporter manager both call New, Run, Enqueue for every
// storage.FinishedFile, Drain on a graceful stop, and Close.
package export
