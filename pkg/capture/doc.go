// Package capture runs one packet capture: it loads ringtap's XDP/TC
// programs (gen/) with a filter spliced in, creates one BPF ring buffer per
// CPU (or one for all, Config.SharedRing), attaches to one or more
// interfaces, drains the rings with one reader goroutine per ring, and hands
// packets to a PacketWriter from one writer goroutine. A matching frame is
// loaded once, straight into a ring record of the smallest size class that
// holds its snapshot.
//
// Promises:
//   - Nothing is pinned. Programs are attached with bpf_link (XDP, TCX), so
//     if the process dies, even by SIGKILL, the kernel detaches them. The
//     netlink clsact fallback for kernels before 6.6 is the exception: its
//     filters are removed by Close, not by the kernel.
//   - A drop is never silent: frames the filter matched but the ring could
//     not hold are counted per CPU and reported by Stats and in pcapng
//     interface statistics blocks.
//   - Run returns only after every program is detached and every record the
//     kernel wrote has been handed to the writer; a Capture can be opened and
//     closed many times in one process without leaking goroutines, fds or
//     kernel objects.
package capture
