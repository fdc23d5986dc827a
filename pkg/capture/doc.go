// Package capture runs packet captures. An Engine holds, per captured
// interface, one program per hook (XDP, TC ingress, TC egress) shared by
// every capture there, one BPF ring buffer per online CPU (or one for all,
// EngineOptions.SharedRing), a reader goroutine per ring and a dispatcher.
// Each capture has a slot (0..63) on each of its interfaces; its filter is
// a function of its own in the interface's programs, called by a
// dispatcher in place of the rt_filter stub. A frame is copied into the
// ring once with the mask of the slots that matched, at the largest of
// their snapshot lengths; the dispatcher hands it to each matching
// capture's PacketWriter cut to that capture's snapshot length.
//
// Promises:
//   - Starting, changing or stopping a capture never detaches another one
//     or loses a frame of it: the interface's programs are rebuilt with a
//     slot more or less and swapped in atomically (bpf_link update for XDP
//     and TCX, cls_bpf replace for clsact). A start that fails changes
//     nothing.
//   - Stop drains: it swaps the capture out, waits for an RCU grace period
//     (membarrier) so that no program still running can reserve a record
//     for it, then waits until the readers have passed everything the
//     rings held, busy (reserved, uncommitted) records included, before it
//     writes statistics and returns.
//   - Nothing is pinned. XDP and TCX programs are bpf_links, which the
//     kernel detaches when the process dies, even by SIGKILL. The netlink
//     clsact fallback for kernels before 6.6 is the exception: its filters
//     carry the owner's pid, are removed by Stop, and filters of a dead
//     ringtap are removed the next time ringtap attaches there. A clsact
//     qdisc ringtap added is removed with its last filter.
//   - An XDP program someone else attached is never replaced: HookXDP
//     fails with ErrXDPBusy, HookAuto captures at TC instead.
//   - A drop is never silent: frames a capture matched but the ring could
//     not hold are counted per capture and reported by Stats and in pcapng
//     interface statistics blocks.
//   - An Engine can start and stop captures for the life of a process
//     without leaking goroutines, fds or kernel objects; an interface
//     without captures is released.
package capture
