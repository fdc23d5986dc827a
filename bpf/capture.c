// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* ringtap capture programs: XDP (ingress) and TC (TCX/clsact, ingress and
 * egress). Each frame: count it; if a filter is spliced in, copy the bytes it
 * may read (rt_window) into this CPU's scratch buffer and run it there; then
 * reserve a record in this CPU's ring in the smallest size class that holds
 * header + first snaplen bytes, and load the frame straight into it
 * (reinserting an offloaded VLAN tag on TC). A captured frame is copied once,
 * an unfiltered capture never touches the scratch buffer. Without
 * --monitor-port the fate of the packet never changes. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "capture.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Load-time constants, set by pkg/capture through the collection spec. */
volatile const __u32 rt_snaplen = RT_MAX_SNAPLEN; /* bytes of a frame kept */
volatile const __u32 rt_window = RT_MAX_SNAPLEN;  /* bytes the filter may read (copied for it) */
volatile const __u8 rt_filtered = 0;          /* a filter is spliced into rt_filter */
volatile const __u32 rt_slot = 0;             /* this interface's index in the capture */
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

static __always_inline struct rt_counters *rt_counters_for(__u32 dir)
{
	__u32 slot = (rt_slot % RT_MAX_IFACES) * 2 + dir;

	return bpf_map_lookup_elem(&rt_counters_map, &slot);
}

/* rt_header fills a record's header. */
static __always_inline void rt_header(struct rt_record *h, __u32 wire_len, __u32 cap_len,
				      __u32 ifindex, __u32 dir, __u32 cpu, __u8 flags)
{
	h->ts_ns = bpf_ktime_get_boot_ns();
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
		__u32 n = rt_bound(cap_len, sz);                               \
		if (!r)                                                        \
			goto full;                                             \
		if (rt_fill(ctx, xdp, vlan, r->data, n, sz)) {                 \
			bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);              \
			c->copy_failed++;                                      \
			goto done;                                             \
		}                                                              \
		rt_header(&r->hdr, wire_len, n, ifindex, dir, cpu, flags);     \
		bpf_ringbuf_submit(r, wake);                                   \
		c->captured++;                                                 \
		c->bytes += n;                                                 \
		goto done;                                                     \
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

/* rt_fill loads n bytes of the frame into d (room for sz >= 16 bytes):
 * xdp and sz are constants of the inlined caller. */
static __always_inline int rt_fill(void *ctx, int xdp, int vlan, __u8 *d, __u32 n, __u32 sz)
{
	if (!xdp)
		return rt_fill_skb(ctx, d, n, sz, vlan);
	if (sz > RT_XDP_CHUNK && n > RT_XDP_CHUNK) {
		if (bpf_xdp_load_bytes(ctx, 0, d, RT_XDP_CHUNK))
			return -1;
		n = rt_bound(n - RT_XDP_CHUNK, RT_XDP_CHUNK);
		return bpf_xdp_load_bytes(ctx, RT_XDP_CHUNK, d + RT_XDP_CHUNK, n);
	}
	return bpf_xdp_load_bytes(ctx, 0, d, n);
}

/* rt_match says whether the filter accepts the frame: it runs on a copy of
 * the bytes the filter may read (at least MACs + tag when a VLAN tag is put
 * back) in this CPU's scratch buffer. Without a filter every frame matches
 * and nothing is copied. */
static __always_inline int rt_match(void *ctx, int xdp, int vlan, __u32 cpu, __u32 data_len, __u32 wire_len,
				    struct rt_counters *c)
{
	struct rt_scratch *s;
	__u32 have;

	if (!rt_filtered)
		return 1;
	s = bpf_map_lookup_elem(&rt_scratch_map, &cpu);
	if (!s)
		return 0;
	have = data_len < rt_window ? data_len : rt_window;
	if (xdp && have > RT_XDP_MAX)
		have = RT_XDP_MAX;
	if (vlan && have < 2 * ETH_ALEN + 4)
		have = 2 * ETH_ALEN + 4; /* data_len >= 16 with a tag */
	have = rt_bound(have, RT_WINDOW);
	if (rt_fill(ctx, xdp, vlan, s->data, have, RT_WINDOW + RT_SLACK)) {
		c->filter_failed++;
		return 0;
	}
	return rt_filter(s->data, have, wire_len);
}

/* rt_capture counts a matched frame and writes it to this CPU's ring. */
static __always_inline void rt_capture(void *ctx, int xdp, struct rt_counters *c, __u32 data_len,
				       __u32 wire_len, __u32 ifindex, __u32 dir, __u32 cpu, __u8 flags, int vlan)
{
	__u32 cap_len = data_len < rt_snaplen ? data_len : rt_snaplen;
	__u64 wake;
	void *ring;

	if (xdp && cap_len > RT_XDP_MAX)
		cap_len = RT_XDP_MAX;

	c->matched++;
	ring = bpf_map_lookup_elem(&rt_rings, &cpu);
	if (!ring)
		goto full;
	wake = rt_wake(ring, cap_len);
	RT_CLASSES
full:
	c->dropped++;
done:
	return;
}

SEC("xdp.frags")
int rt_xdp(struct xdp_md *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 verdict = rt_monitor ? XDP_DROP : XDP_PASS;
	struct rt_counters *c;
	__u32 wire_len, data_len;

	c = rt_counters_for(RT_DIR_IN);
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
	if (rt_match(ctx, 1, 0, cpu, data_len, wire_len, c))
		rt_capture(ctx, 1, c, data_len, wire_len, ctx->ingress_ifindex, RT_DIR_IN, cpu, 0, 0);
	return verdict;
}

static __always_inline int rt_tc(struct __sk_buff *skb, __u32 dir)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct rt_counters *c;
	__u32 wire_len, data_len;
	__u8 flags = 0;
	int vlan = 0;

	c = rt_counters_for(dir);
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
	if (rt_match(skb, 0, vlan, cpu, data_len, wire_len, c))
		rt_capture(skb, 0, c, data_len, wire_len, skb->ifindex, dir, cpu, flags, vlan);
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
