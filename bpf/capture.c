// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* ringtap capture programs: XDP (ingress) and TC (TCX/clsact, ingress and
 * egress). One program per interface and hook serves every capture there,
 * each in a slot (0..63). Each frame: count it; if any capture has a filter,
 * copy the bytes the filters may read (rt_window) into this CPU's scratch
 * buffer once and run each filter there, collecting the mask of slots that
 * match; then reserve one record in this CPU's ring in the smallest size
 * class that holds header + the largest snaplen among them, load the frame
 * straight into it (reinserting an offloaded VLAN tag on TC) and count its
 * fate per slot. A frame is copied into the ring once however many captures
 * match it. Without --monitor-port the fate of the packet never changes. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "capture.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Load-time constants, set by pkg/capture through the collection spec. One
 * program serves every capture of an interface and hook: pkg/capture
 * rebuilds it when a capture comes or goes and swaps it in atomically. */
/* Per capture slot: bytes of a frame kept. Deliberately not const: the
 * verifier reads a frozen constant as a known value and would follow each
 * slot's snaplen as a separate path through rt_snap; from a writable map it
 * reads an unknown, and rt_snap stays linear in the number of slots. The
 * programs never write it. */
volatile __u32 rt_snaps[RT_MAX_CAPS] = {RT_MAX_SNAPLEN};
volatile const __u64 rt_all = 0;              /* slots whose capture has no filter (match everything) */
volatile const __u32 rt_window = RT_MAX_SNAPLEN; /* bytes the filters may read (copied for them) */
volatile const __u32 rt_prog_key = RT_PROG_KEY(0); /* this program instance's own counters */
volatile const __u8 rt_filtered = 0;          /* filters are spliced in behind rt_filter */
volatile const __u32 rt_wakeup_bytes = 65536; /* wake the reader once this much is queued */
volatile const __u8 rt_monitor = 0;           /* drop received frames after capture (SPAN/TAP ports) */
volatile const __u8 rt_test_meta = 0;         /* test runs only: lengths may come with the frame (struct rt_test_meta) */

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
	__uint(max_entries, RT_COUNTER_KEYS);
	__type(key, __u32);
	__type(value, struct rt_counters);
} rt_counters_map SEC(".maps");

/* rt_filter is the filter stub. pkg/capture replaces its body with a
 * dispatcher that calls each capture's translated tcpdump expression (added
 * as functions of their own) and sets the capture's slot bit in the result
 * when it accepts. Calling convention:
 *   R1 = pointer to the frame's first byte (inside rt_scratch_map's value),
 *   R2 = bytes valid at R1 (<= rt_window <= RT_WINDOW),
 *   R3 = the frame's original length (cBPF "len"),
 *   R0 = the mask of slots whose filter accepted.
 * The stub accepts nothing; it only runs when rt_filtered is set, which
 * pkg/capture sets only after splicing. The asm keeps clang from folding the
 * call or dropping the arguments. */
static __noinline __u64 rt_filter(const __u8 *pkt, __u32 have, __u32 wire_len)
{
	__u64 ret = 0;
	asm volatile("" : "+r"(ret) : "r"(pkt), "r"(have), "r"(wire_len) : "memory");
	return ret;
}

/* rt_bound clamps v to [1, max] in a way the verifier can follow whatever
 * clang does with the surrounding code. The compares are 32-bit (w
 * registers): a helper's size argument reaches it as a 32-bit move, which
 * takes the subregister's bounds, and verifiers before 6.7 do not carry
 * bounds learnt from a 64-bit compare into the subregister (6.1 rejected
 * the size as possibly 0). The first move zero-extends, so that the
 * verifier knows the upper half is 0 wherever clang uses the 64-bit
 * register. */
#define rt_bound(v, max)                                                       \
	({                                                                     \
		__u32 __v = (v);                                               \
		asm volatile("%0 = %0;" : "+w"(__v)); /* zero-extend */        \
		asm volatile("if %0 <= %1 goto +1; %0 = %1;"                   \
			     : "+w"(__v)                                       \
			     : "i"(max));                                      \
		asm volatile("if %0 > 0 goto +1; %0 = 1;" : "+w"(__v));        \
		__v;                                                           \
	})

static __always_inline struct rt_counters *rt_counters_at(__u32 key)
{
	return bpf_map_lookup_elem(&rt_counters_map, &key);
}

/* rt_header fills a record's header. */
static __always_inline void rt_header(struct rt_record *h, __u64 mask, __u32 wire_len, __u32 cap_len,
				      __u32 ifindex, __u32 dir, __u32 cpu, __u8 flags)
{
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->mask = mask;
	h->wire_len = wire_len;
	h->cap_len = cap_len;
	h->ifindex = ifindex;
	h->dir = dir;
	h->flags = flags;
	h->cpu = cpu;
}

/* rt_wake batches wakeups: the reader is woken once rt_wakeup_bytes are
 * queued; below that it drains on its flush timer, so an idle ring still
 * reaches the file within the flush interval. */
static __always_inline __u64 rt_wake(void *ring, __u32 cap_len)
{
	__u64 avail = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);

	return avail + cap_len >= rt_wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* bpf_ringbuf_reserve needs a constant size, so a record is reserved in the
 * smallest of these classes that holds cap_len bytes: steps of 64 bytes up
 * to 512, of 128 up to 1536 (a full Ethernet frame), then 2048 ... 9216
 * (jumbo) ... 65540 (a 64 KiB frame with its tag) ... RT_WINDOW. The padding after cap_len is ring space only; user
 * space reads cap_len from the header. RT_CLASS expands to one class of
 * rt_capture: reserve, load the frame, header, submit. */
#define RT_CLASS(sz)                                                           \
	if (cap_len <= (sz)) {                                                 \
		struct {                                                       \
			struct rt_record hdr;                                  \
			__u8 data[sz];                                         \
		} *r = bpf_ringbuf_reserve(ring, sizeof(*r), 0);               \
		n = rt_bound(cap_len, sz);                                     \
		if (!r)                                                        \
			goto out;                                              \
		if (rt_fill(ctx, xdp, vlan, r->data, n, sz)) {                 \
			bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);              \
			fate = RT_COPY_FAILED;                                 \
			goto out;                                              \
		}                                                              \
		rt_header(&r->hdr, mask, wire_len, n, ifindex, dir, cpu, flags); \
		bpf_ringbuf_submit(r, wake);                                   \
		fate = RT_CAPTURED;                                            \
		goto out;                                                      \
	}

#define RT_CLASSES                                                             \
	if (cap_len <= 512) {                                                  \
		RT_CLASS(64)                                                   \
		RT_CLASS(128)                                                  \
		RT_CLASS(192)                                                  \
		RT_CLASS(256)                                                  \
		RT_CLASS(320)                                                  \
		RT_CLASS(384)                                                  \
		RT_CLASS(448)                                                  \
		RT_CLASS(512)                                                  \
	} else if (cap_len <= 1536) {                                          \
		RT_CLASS(640)                                                  \
		RT_CLASS(768)                                                  \
		RT_CLASS(896)                                                  \
		RT_CLASS(1024)                                                 \
		RT_CLASS(1152)                                                 \
		RT_CLASS(1280)                                                 \
		RT_CLASS(1408)                                                 \
		RT_CLASS(1536)                                                 \
	} else {                                                               \
		RT_CLASS(2048)                                                 \
		RT_CLASS(4096)                                                 \
		RT_CLASS(9216)                                                 \
		RT_CLASS(16384)                                                \
		RT_CLASS(32768)                                                \
		RT_CLASS(65540)                                                \
		RT_CLASS(131072)                                               \
		RT_CLASS(RT_WINDOW)                                            \
	}

/* rt_fill_skb loads n bytes of the frame into d (room for sz >= 16 bytes),
 * putting an offloaded VLAN tag back after the MAC addresses so the frame
 * reads as on the wire. */
static __always_inline int rt_fill_skb(struct __sk_buff *skb, __u8 *d, __u32 n, __u32 sz, int vlan)
{
	__u32 rest;

	if (!vlan)
		return bpf_skb_load_bytes(skb, 0, d, n);
	if (bpf_skb_load_bytes(skb, 0, d, 2 * ETH_ALEN))
		return -1;
	*(__be16 *)&d[12] = (__be16)skb->vlan_proto;
	*(__be16 *)&d[14] = bpf_htons((__u16)skb->vlan_tci);
	if (n <= 2 * ETH_ALEN + 4)
		return 0;
	rest = rt_bound(n - (2 * ETH_ALEN + 4), sz - (2 * ETH_ALEN + 4));
	return bpf_skb_load_bytes(skb, 2 * ETH_ALEN, d + 2 * ETH_ALEN + 4, rest);
}

/* bpf_xdp_load_bytes takes at most 0xffff bytes, at offsets up to 0xffff:
 * a larger frame is loaded in two calls, and an XDP record holds at most
 * RT_XDP_MAX bytes. */
#define RT_XDP_CHUNK 0xffff
#define RT_XDP_MAX (2 * RT_XDP_CHUNK)
/* Room after the first chunk in a record of sz bytes, at most a chunk. */
#define RT_XDP_REST(sz) ((sz) - RT_XDP_CHUNK < RT_XDP_CHUNK ? (sz) - RT_XDP_CHUNK : RT_XDP_CHUNK)

/* rt_fill loads n bytes of the frame into d (room for sz >= 16 bytes):
 * xdp and sz are constants of the inlined caller. */
static __always_inline int rt_fill(void *ctx, int xdp, int vlan, __u8 *d, __u32 n, __u32 sz)
{
	if (!xdp)
		return rt_fill_skb(ctx, d, n, sz, vlan);
	if (sz > RT_XDP_CHUNK && n > RT_XDP_CHUNK) {
		if (bpf_xdp_load_bytes(ctx, 0, d, RT_XDP_CHUNK))
			return -1;
		/* The second chunk is bounded by what the record has left,
		 * which older verifiers (6.1) do not work out from n <= sz. */
		n = rt_bound(n - RT_XDP_CHUNK, RT_XDP_REST(sz));
		return bpf_xdp_load_bytes(ctx, RT_XDP_CHUNK, d + RT_XDP_CHUNK, n);
	}
	return bpf_xdp_load_bytes(ctx, 0, d, n);
}

/* rt_match returns the mask of capture slots that accept the frame: those
 * without a filter, and those whose filter accepts a copy of the bytes the
 * filters may read (at least MACs + tag when a VLAN tag is put back) in this
 * CPU's scratch buffer. Without filters nothing is copied. */
static __always_inline __u64 rt_match(void *ctx, int xdp, int vlan, __u32 cpu, __u32 data_len, __u32 wire_len,
				      struct rt_counters *c)
{
	struct rt_scratch *s;
	__u32 have;

	if (!rt_filtered)
		return rt_all;
	s = bpf_map_lookup_elem(&rt_scratch_map, &cpu);
	if (!s)
		return rt_all;
	have = data_len < rt_window ? data_len : rt_window;
	if (xdp && have > RT_XDP_MAX)
		have = RT_XDP_MAX;
	if (vlan && have < 2 * ETH_ALEN + 4)
		have = 2 * ETH_ALEN + 4; /* data_len >= 16 with a tag */
	have = rt_bound(have, RT_WINDOW);
	if (rt_fill(ctx, xdp, vlan, s->data, have, RT_WINDOW + RT_SLACK)) {
		c->filter_failed++;
		return rt_all;
	}
	return rt_all | rt_filter(s->data, have, wire_len);
}

/* What became of a matched frame. */
#define RT_DROPPED 0     /* the ring was full */
#define RT_CAPTURED 1    /* a record was written */
#define RT_COPY_FAILED 2 /* loading the frame into the record failed */

/* rt_snap and rt_count are global functions: the verifier checks each once,
 * on its own, with its arguments unknown, so nothing in the caller has to
 * be tracked precisely for them. Were they inlined (or static), the
 * verifier would follow the mask as a known value, path by path through
 * the dispatcher's bits, and the program would exceed its complexity limit
 * after a dozen captures. */

/* rt_snap is the largest snaplen among the slots in mask (0 for none). */
__noinline int rt_snap(__u64 mask)
{
	__u32 snap = 0;

	for (__u32 i = 0; i < RT_MAX_CAPS; i++) {
		if (!(mask >> i))
			break;
		if ((mask >> i) & 1) {
			__u32 s = rt_snaps[i & (RT_MAX_CAPS - 1)];

			if (s > snap)
				snap = s;
		}
	}
	return snap;
}

/* rt_count counts a matched frame's fate for every capture slot in mask. */
__noinline int rt_count(__u64 mask, __u32 dir, __u32 fate, __u32 n)
{
	for (__u32 i = 0; i < RT_MAX_CAPS; i++) {
		struct rt_counters *c;

		if (!(mask >> i))
			break;
		if (!((mask >> i) & 1))
			continue;
		c = rt_counters_at(RT_CAP_KEY(i, dir & 1));
		if (!c)
			continue;
		c->matched++;
		if (fate == RT_CAPTURED) {
			__u32 s = rt_snaps[i & (RT_MAX_CAPS - 1)];

			c->captured++;
			c->bytes += n < s ? n : s;
		} else if (fate == RT_DROPPED) {
			c->dropped++;
		} else {
			c->copy_failed++;
		}
	}
	return 0;
}

/* rt_capture writes a frame that the captures in mask matched (snap: the
 * largest of their snaplens, > 0) to this CPU's ring, once for all of
 * them, and counts it. */
static __always_inline void rt_capture(void *ctx, int xdp, struct rt_counters *c, __u64 mask, __u32 snap,
				       __u32 data_len, __u32 wire_len, __u32 ifindex, __u32 dir, __u32 cpu,
				       __u8 flags, int vlan)
{
	__u32 cap_len = data_len < snap ? data_len : snap;
	int fate = RT_DROPPED;
	__u32 n = 0;
	__u64 wake;
	void *ring;

	if (cap_len > RT_WINDOW)
		cap_len = RT_WINDOW;
	if (xdp && cap_len > RT_XDP_MAX)
		cap_len = RT_XDP_MAX;

	c->matched++;
	ring = bpf_map_lookup_elem(&rt_rings, &cpu);
	if (!ring)
		goto out;
	wake = rt_wake(ring, cap_len);
	RT_CLASSES
out:
	if (fate == RT_CAPTURED) {
		c->captured++;
		c->bytes += n;
	} else if (fate == RT_DROPPED) {
		c->dropped++;
	} else {
		c->copy_failed++;
	}
	rt_count(mask, dir, fate, n);
}

SEC("xdp.frags")
int rt_xdp(struct xdp_md *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 verdict = rt_monitor ? XDP_DROP : XDP_PASS;
	struct rt_counters *c;
	__u32 wire_len, data_len, snap;
	__u64 mask;

	c = rt_counters_at(rt_prog_key);
	if (!c)
		return verdict;
	c->seen++;
	data_len = wire_len = bpf_xdp_get_buff_len(ctx);
	if (rt_test_meta) {
		struct rt_test_meta *m = (void *)(long)ctx->data_meta;

		if ((void *)(m + 1) <= (void *)(long)ctx->data) {
			wire_len = m->wire_len;
			if (m->data_len < data_len)
				data_len = m->data_len;
		}
	}
	mask = rt_match(ctx, 1, 0, cpu, data_len, wire_len, c);
	snap = rt_snap(mask);
	if (snap)
		rt_capture(ctx, 1, c, mask, snap, data_len, wire_len, ctx->ingress_ifindex, RT_DIR_IN, cpu, 0, 0);
	return verdict;
}

static __always_inline int rt_tc(struct __sk_buff *skb, __u32 dir)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct rt_counters *c;
	__u32 wire_len, data_len;
	__u8 flags = 0;
	int vlan = 0;
	__u32 snap;
	__u64 mask;

	c = rt_counters_at(rt_prog_key);
	if (!c)
		return TC_ACT_UNSPEC;
	c->seen++;
	data_len = skb->len;
	if (skb->vlan_present && data_len >= 2 * ETH_ALEN) {
		/* The kernel moved the tag into skb metadata. */
		data_len += 4;
		vlan = 1;
		flags = RT_F_VLAN_REINSERTED;
	}
	wire_len = data_len;
	if (rt_test_meta && skb->cb[1]) {
		wire_len = skb->cb[0];
		if (skb->cb[1] < data_len)
			data_len = skb->cb[1];
	}
	mask = rt_match(skb, 0, vlan, cpu, data_len, wire_len, c);
	snap = rt_snap(mask);
	if (snap)
		rt_capture(skb, 0, c, mask, snap, data_len, wire_len, skb->ifindex, dir, cpu, flags, vlan);
	/* --monitor-port on a kernel without XDP support: drop at ingress. */
	return rt_monitor && dir == RT_DIR_IN ? TC_ACT_SHOT : TC_ACT_UNSPEC;
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
