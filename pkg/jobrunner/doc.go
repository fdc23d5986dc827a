// Package jobrunner is the agent's side of capture jobs: a Component of
// the agent's tree that takes the runs the console has for the device
// (offered by the poller's long poll), claims them, captures each through
// the pcap manager, reports it, uploads its pcapng and ends it on the
// console, as buildkite-agent's job runner does for builds.
//
// What it promises:
//
//   - A run is claimed once, by one attempt: each attempt has a random
//     128-bit claim token, written to the run's run.json (atomically,
//     pkg/atomicfile) before the claim request, so every retry, also
//     after a restart, sends the same token and the console's answer is
//     the same. At most Jobs.MaxConcurrent runs are claimed and
//     capturing at once; the others stay queued on the console and are
//     claimed when one ends. Runs waiting for their upload do not count
//     (the disk budget bounds them).
//   - Before a capture starts, the run must fit in the disk budget: its
//     job's max_bytes within jobs.max_bytes less what the other runs hold
//     (a capturing run holds its max_bytes, a finished one its file), and
//     within the file system's free space above jobs.min_free. A run that
//     does not fit is claimed and ended failed at once, with a sentence
//     that says what to change; no capture starts.
//   - A run's goroutines are its own and end with it: one reports the
//     progress every second (the first report moves it to running, the
//     one after the capture stops to uploading), one checks for a cancel
//     every second ± 20%, one waits for the stop condition (the duration,
//     the packet or byte bound, the capture ending by itself, a cancel,
//     the console ending the run, the agent stopping), one pushes the
//     live stream while the console asks for it, and one uploads.
//   - A cancel stops the capture within two seconds of the request (the
//     cancel check and the progress answers both carry it); the partial
//     file is finished, uploaded, and the run ends canceled, "canceled by
//     an admin". A cancel that comes once the capture has stopped changes
//     nothing: the run ends as it was decided.
//   - The result is uploaded before the run ends: to the console through
//     its resumable upload (HEAD, then PATCH from the console's
//     Upload-Offset in chunks, with the file's length and SHA-256; a 409
//     resumes at the console's offset), or to S3 through pkg/export with
//     the agent's export section. Every request is retried with
//     exponential backoff on network errors and 5xx; a run whose upload
//     cannot reach the console stays in its directory and is retried
//     until it is done, across restarts. A run's directory is removed
//     only once the console has confirmed both the upload and the end.
//   - Restarts: at start the jobs directory is scanned. A run that was
//     capturing when the agent died has its pcapng cut after the last
//     whole block, uploaded, and ends failed: "the agent restarted during
//     the run (it was killed or crashed); the partial capture was
//     uploaded". A run that was uploading or ending carries on. On a
//     graceful stop a capturing run is stopped, its file finished, and
//     it ends failed, "the agent was stopped during the run", if the
//     upload and the end make it within StopGrace; what does not is done
//     after the next start.
//   - The console ending a run (410) stops its capture; the file is still
//     uploaded if the console takes it, then the run is dropped. A run
//     another claim holds (409) is dropped at once.
//   - The live stream never slows the capture: the encoder
//     (pkg/livestream) drops what the push cannot carry, and counts it.
//   - All requests use the client configuration of the certificate
//     manager (pinned CA, current client certificate: a renewal applies
//     from the next connection on).
package jobrunner
