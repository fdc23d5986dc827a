// Package consoleload measures one ringtap console under a fleet of
// simulated agents (`ringtap-bench console-load`, BENCHMARKS.md).
//
// The console is a real `ringtap-console serve` process on 127.0.0.1,
// with SQLite in its data directory or a throwaway PostgreSQL cluster
// (pgtest, with PostgreSQL's own durability settings). The agents are in
// this process, but each is the agent's own code: it enrolls with
// certmgr.Enroll (its own key, an install key of its own, the CA pinned
// by fingerprint), and runs a poller.Poller over mTLS with its own
// certificate, long-polling its desired config and sending heartbeats.
// Only the pcap manager is replaced: it records when each config arrived
// and reports two running captures in heartbeats.
//
// Run goes through four phases:
//
//  1. Enrollment: Agents install keys through the admin API, then as
//     many enrollments.
//  2. Steady: every agent long-polls and heartbeats every
//     HeartbeatInterval; the agents start spread over one interval, as
//     independently booted machines would. The console's CPU and memory
//     are sampled over Steady.
//  3. Changes: Rounds times, the desired captures of every device are
//     changed through the admin API (PUT with If-Match, PutWorkers at a
//     time), and each agent's apply time is recorded. A device's latency
//     runs from the moment its PUT was sent to the moment its agent's
//     poller handed the new captures to the pcap manager; a round's
//     fleet time from its first PUT to the last agent's apply.
//     Then the admin API must list every device online, at the
//     generation its agent applied, with both captures running.
//  4. Heartbeat burst: BurstSenders goroutines send heartbeats back to
//     back for Burst, each for the devices of its share in turn, over
//     each device's own mTLS client, to find the heartbeat writes per
//     second the console sustains.
//
// The console's CPU is the sum of its threads' run time (schedstat), and
// for PostgreSQL the server's processes are measured apart. The agents
// share the machine with the console: on a small machine their CPU
// competes with it, which lengthens latencies but not the console's CPU
// per operation.
package consoleload
