// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* ringtap capture programs: XDP (ingress) and TC (TCX/clsact, ingress and
 * egress). Each frame: count it, copy up to rt_window bytes into this CPU's
 * scratch buffer (reinserting an offloaded VLAN tag on TC), run the filter on
 * that copy, and write header + first snaplen bytes to this CPU's ring.
 * Without --monitor-port the fate of the packet never changes. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "capture.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Load-time constants, set by pkg/capture through the collection spec. */
volatile const __u32 rt_snaplen = 65535;      /* bytes of a frame kept */
volatile const __u32 rt_window = 65535;       /* bytes copied for the filter, >= snaplen */
volatile const __u32 rt_slot = 0;             /* this interface's index in the capture */
volatile const __u32 rt_wakeup_bytes = 65536; /* wake the reader once this much is queued */
volatile const __u8 rt_monitor = 0;           /* XDP: drop after capture (SPAN/TAP ports) */

/* Per-CPU scratch: one entry per possible CPU (value too large for a
 * PERCPU_ARRAY). Programs run with migration disabled, so index = CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* resized to the number of possible CPUs */
	__type(key, __u32);
	__type(value, struct rt_scratch);
} rt_scratch_map SEC(".maps");

/* One ring per CPU; the inner map is a template, pkg/capture creates the
 * rings with the requested size. */
struct rt_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* resized to the number of possible CPUs */
	__type(key, __u32);
	__array(values, struct rt_ring);
} rt_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * RT_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct rt_counters);
} rt_counters_map SEC(".maps");

/* rt_filter is the filter stub. pkg/filter replaces its body with a
 * translated tcpdump expression before load. Calling convention:
 *   R1 = pointer to the frame's first byte (inside rt_scratch_map's value),
 *   R2 = bytes valid at R1 (<= rt_window <= RT_WINDOW),
 *   R3 = the frame's original length (cBPF "len"),
 *   R0 = 0 to reject, anything else to accept.
 * The stub accepts everything. The asm keeps clang from folding the call or
 * dropping the arguments. */
static __noinline __u32 rt_filter(const __u8 *pkt, __u32 have, __u32 wire_len)
{
	__u32 ret = 1;
	asm volatile("" : "+r"(ret) : "r"(pkt), "r"(have), "r"(wire_len) : "memory");
	return ret;
}

/* rt_bound clamps v to [1, max] in a way the verifier can follow whatever
 * clang does with the surrounding code. */
#define rt_bound(v, max)                                                       \
	({                                                                     \
		__u32 __v = (v);                                               \
		asm volatile("if %0 <= %1 goto +1; %0 = %1;"                   \
			     : "+r"(__v)                                       \
			     : "i"(max));                                      \
		asm volatile("if %0 > 0 goto +1; %0 = 1;" : "+r"(__v));        \
		__v;                                                           \
	})

static __always_inline struct rt_counters *rt_counters_for(__u32 dir)
{
	__u32 slot = (rt_slot % RT_MAX_IFACES) * 2 + dir;

	return bpf_map_lookup_elem(&rt_counters_map, &slot);
}

/* rt_emit filters the copied frame and writes the record. */
static __always_inline void rt_emit(struct rt_scratch *s, struct rt_counters *c,
				    __u32 have, __u32 wire_len, __u32 ifindex,
				    __u32 dir, __u32 cpu, __u8 flags)
{
	void *ring;
	__u32 cap_len;
	__u64 avail, wake;

	if (!rt_filter(s->data, have, wire_len))
		return;
	c->matched++;

	cap_len = wire_len < rt_snaplen ? wire_len : rt_snaplen;
	if (cap_len > have)
		cap_len = have;
	cap_len = rt_bound(cap_len, RT_WINDOW);

	s->hdr.ts_ns = bpf_ktime_get_boot_ns();
	s->hdr.wire_len = wire_len;
	s->hdr.cap_len = cap_len;
	s->hdr.ifindex = ifindex;
	s->hdr.dir = dir;
	s->hdr.flags = flags;
	s->hdr.cpu = cpu;

	ring = bpf_map_lookup_elem(&rt_rings, &cpu);
	if (!ring) {
		c->dropped++;
		return;
	}
	/* Batch wakeups: the reader is woken once rt_wakeup_bytes are queued;
	 * below that it drains on its flush timer, so an idle ring still
	 * reaches the file within the flush interval. */
	avail = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	wake = avail + cap_len >= rt_wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(ring, s, sizeof(s->hdr) + cap_len, wake)) {
		c->dropped++;
		return;
	}
	c->captured++;
	c->bytes += cap_len;
}

SEC("xdp.frags")
int rt_xdp(struct xdp_md *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 verdict = rt_monitor ? XDP_DROP : XDP_PASS;
	struct rt_counters *c;
	struct rt_scratch *s;
	__u32 wire_len, have;

	c = rt_counters_for(RT_DIR_IN);
	s = bpf_map_lookup_elem(&rt_scratch_map, &cpu);
	if (!c || !s)
		return verdict;
	c->seen++;

	wire_len = bpf_xdp_get_buff_len(ctx);
	have = wire_len < rt_window ? wire_len : rt_window;
	have = rt_bound(have, RT_WINDOW);
	if (bpf_xdp_load_bytes(ctx, 0, s->data, have))
		return verdict;
	rt_emit(s, c, have, wire_len, ctx->ingress_ifindex, RT_DIR_IN, cpu, 0);
	return verdict;
}

static __always_inline int rt_tc(struct __sk_buff *skb, __u32 dir)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct rt_counters *c;
	struct rt_scratch *s;
	__u32 wire_len, have, rest;
	__u8 flags = 0;

	c = rt_counters_for(dir);
	s = bpf_map_lookup_elem(&rt_scratch_map, &cpu);
	if (!c || !s)
		return TC_ACT_UNSPEC;
	c->seen++;

	wire_len = skb->len;
	if (skb->vlan_present && wire_len >= 2 * ETH_ALEN) {
		/* The kernel moved the tag into skb metadata; put it back
		 * after the MAC addresses so the frame reads as on the wire. */
		wire_len += 4;
		have = wire_len < rt_window ? wire_len : rt_window;
		have = rt_bound(have, RT_WINDOW);
		if (have < 2 * ETH_ALEN + 4)
			return TC_ACT_UNSPEC;
		if (bpf_skb_load_bytes(skb, 0, s->data, 2 * ETH_ALEN))
			return TC_ACT_UNSPEC;
		*(__be16 *)&s->data[12] = (__be16)skb->vlan_proto;
		*(__be16 *)&s->data[14] = bpf_htons((__u16)skb->vlan_tci);
		rest = have - (2 * ETH_ALEN + 4);
		if (rest > 0) {
			rest = rt_bound(rest, RT_WINDOW);
			if (bpf_skb_load_bytes(skb, 2 * ETH_ALEN, &s->data[16], rest))
				return TC_ACT_UNSPEC;
		}
		flags = RT_F_VLAN_REINSERTED;
	} else {
		have = wire_len < rt_window ? wire_len : rt_window;
		have = rt_bound(have, RT_WINDOW);
		if (bpf_skb_load_bytes(skb, 0, s->data, have))
			return TC_ACT_UNSPEC;
	}
	rt_emit(s, c, have, wire_len, skb->ifindex, dir, cpu, flags);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int rt_tc_ingress(struct __sk_buff *skb)
{
	return rt_tc(skb, RT_DIR_IN);
}

SEC("tc")
int rt_tc_egress(struct __sk_buff *skb)
{
	return rt_tc(skb, RT_DIR_OUT);
}
