/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared definitions of ringtap's capture programs. Go mirrors these types
 * through bpf2go (gen/), so a change here is a change of the wire format
 * between kernel and user space. */
#ifndef RINGTAP_CAPTURE_H
#define RINGTAP_CAPTURE_H

#include <linux/types.h>

/* Largest snapshot: tcpdump's maximum (GRO/TSO super-frames and BIG TCP
 * exceed 64 KiB). */
#define RT_MAX_SNAPLEN 262144
/* Largest frame we copy: a maximal snapshot plus a reinserted VLAN tag. */
#define RT_WINDOW (RT_MAX_SNAPLEN + 4)
/* Slack after the window so that the reinserted-tag copy (offset 16) stays
 * inside the map value for the verifier. */
#define RT_SLACK 16

/* Directions, as stored in rt_record.dir and in counter slots. */
#define RT_DIR_IN 0
#define RT_DIR_OUT 1

/* rt_record.flags */
#define RT_F_VLAN_REINSERTED 1

/* Captures sharing one interface's programs: a record's mask has a bit per
 * capture slot. */
#define RT_MAX_CAPS 64

/* Counter keys: RT_CAP_KEY(slot, dir) are a capture slot's counters (seen
 * unused); a program's own counters (every frame it ran on) are at the key
 * rt_prog_key it was loaded with, RT_PROG_KEY(i): each program instance
 * has its own, so that a capture's seen counts exactly the frames of the
 * instances that evaluated its filter. */
#define RT_CAP_KEY(slot, dir) ((slot) * 2 + (dir))
#define RT_PROG_KEYS 256
#define RT_PROG_KEY(i) (2 * RT_MAX_CAPS + (i))
#define RT_COUNTER_KEYS (2 * RT_MAX_CAPS + RT_PROG_KEYS)

/* rt_record is the header of every ring record; cap_len bytes of the frame
 * follow it. ts_ns is CLOCK_BOOTTIME (bpf_ktime_get_boot_ns); user space adds
 * the REALTIME-BOOTTIME offset it samples to get wall-clock time. mask has
 * bit s set when the capture in slot s matched the frame; cap_len is the
 * largest snaplen among them, and user space cuts the frame to each one's. */
struct rt_record {
	__u64 ts_ns;
	__u64 mask;
	__u32 wire_len;
	__u32 cap_len;
	__u32 ifindex;
	__u8 dir;
	__u8 flags;
	__u16 cpu;
};

/* rt_counters are per CPU and per key (RT_CAP_KEY, RT_PROG_KEY). For a
 * program key: seen = frames it ran on, matched = frames at least one
 * capture matched, captured/bytes = records written, dropped/copy_failed =
 * records lost, filter_failed = frames whose filter window could not be
 * loaded (every filtered capture rejected them). For a capture key: seen
 * is unused (the program's seen applies), matched = captured + dropped +
 * copy_failed, bytes = the bytes its file gets (cut to its snaplen). */
struct rt_counters {
	__u64 seen;          /* frames the hook ran on */
	__u64 matched;       /* frames the filter accepted */
	__u64 captured;      /* records written to the ring */
	__u64 bytes;         /* captured bytes (frame bytes, header excluded) */
	__u64 dropped;       /* matched, but the ring was full */
	__u64 copy_failed;   /* matched, a record reserved, but loading the frame into it failed */
	__u64 filter_failed; /* not matched: loading the filter's window failed */
};

/* Test runs (BPF_PROG_RUN, rt_test_meta set): the frame's original length
 * and the number of valid bytes come with the frame, in XDP metadata or in
 * __sk_buff.cb[0..1], as libpcap judges a truncated record. */
struct rt_test_meta {
	__u32 wire_len;
	__u32 data_len;
};

struct rt_scratch {
	struct rt_record hdr;
	__u8 data[RT_WINDOW + RT_SLACK];
};

#endif
