// Package poller is the agent's side of remote configuration: a Component
// of the agent's tree that long-polls the console for the device's desired
// captures, applies them with the pcap manager, keeps the last applied
// config on disk, and reports heartbeats.
//
// What it promises:
//
//   - It asks GET /api/v1/agent/config?after=GEN&wait=30s over mTLS (the
//     certificate manager's tls.Config, so a renewed client certificate is
//     used from the next connection on, without a restart). The console
//     answers at once when it holds a newer generation, else after the
//     wait with 304 Not Modified, and the poller asks again.
//   - What the console sends is checked as the agent's own config file is,
//     by pkg/agent/config: the captures are put in the local file in place
//     of its own (so the file's http, rings, export, ... apply to them),
//     parsed, filters compiled, output directories checked (Config.Check).
//     A config that fails, or an answer that is not such a config at all,
//     is logged, reported in the heartbeat's errors, and never applied; the
//     running captures are left as they are.
//   - A config that passes is applied with pcapmgr.Manager.Apply (level
//     triggered: what did not change is not touched), then written to
//     StateFile in the state directory (JSON, mode 0600, atomically), so
//     that an agent restarted while the console is away runs the same
//     captures again (Run restores them before it first asks the console).
//     A generation is applied once: after a restart the poller asks for
//     what is newer than the generation it restored.
//   - Generations are per device. StateFile names the device, and when
//     the client certificate names another one (Options.DeviceID: the
//     agent was enrolled again), the poller forgets the old device's
//     generation and jobs, asks without after, reports no applied
//     generation, and keeps the old captures running until the new
//     device's config replaces them, whatever its generation. A new
//     device at generation 0 (never configured) has no config yet: the
//     old captures keep running until it gets one.
//   - A 401 or 403 answer (a revoked device) is passed to
//     Options.OnRefused, so the certificate manager asks for
//     re-enrollment at once.
//   - While the console cannot be reached, or answers an error, the poller
//     retries with exponential backoff and jitter, from BackoffMin (1s) to
//     BackoffMax (60s). The captures keep running. A certificate that
//     expired (NeedsReenroll) changes nothing else: the last applied config
//     keeps running, and the problem is in Status, the heartbeat and the
//     certificate manager's /readyz.
//   - With a job runner (Options.Jobs), the poll also asks jobs=SEQ, the
//     jobs sequence number last received: the console answers at once
//     when the device's capture jobs changed too. Every answer's jobs
//     (the device's runs that have not ended, jobapi.AgentJob) are
//     offered to the runner, also when only they changed: an answer whose
//     generation is not newer but whose jobs_seq is goes to the runner
//     only, and applies no config.
//   - Every HeartbeatInterval (10s, ±10% at random so that agents started
//     together drift apart), and right after each apply, it POSTs
//     /api/v1/agent/heartbeat: the applied generation, each capture's state
//     and counters, the interfaces the agent sees, the errors (a rejected
//     config, a capture's last error such as a filter the kernel refused,
//     the certificate's problem) and the certificate's expiry.
package poller
