// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Measurement only, not loaded by ringtap: the capture program with the
 * alternative copy method "size classes", to compare with what ships (per-CPU
 * scratch + bpf_ringbuf_output). bpf_ringbuf_reserve needs a constant size,
 * so the record is reserved in the smallest class that holds cap_len and the
 * frame is loaded straight into it: one copy instead of two, at the price of
 * ring space lost to padding. No filter (it would need the scratch copy).
 * See pkg/capture BenchmarkCopyMethod. */
#include "capture.c"

#define RT_CLASS(sz)                                                                  \
	if (cap_len <= (sz)) {                                                        \
		struct {                                                              \
			struct rt_record hdr;                                         \
			__u8 data[sz];                                                \
		} *r = bpf_ringbuf_reserve(ring, sizeof(*r), 0);                      \
		__u32 n = rt_bound(cap_len, sz);                                      \
		if (!r) {                                                             \
			c->dropped++;                                                 \
			return verdict;                                               \
		}                                                                     \
		if (bpf_xdp_load_bytes(ctx, 0, r->data, n)) {                        \
			bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);                     \
			return verdict;                                               \
		}                                                                     \
		r->hdr.ts_ns = bpf_ktime_get_boot_ns();                               \
		r->hdr.wire_len = wire_len;                                           \
		r->hdr.cap_len = n;                                                   \
		r->hdr.ifindex = ctx->ingress_ifindex;                                \
		r->hdr.dir = RT_DIR_IN;                                               \
		r->hdr.flags = 0;                                                     \
		r->hdr.cpu = cpu;                                                     \
		bpf_ringbuf_submit(r, wake);                                          \
		c->captured++;                                                        \
		c->bytes += n;                                                        \
		return verdict;                                                       \
	}

SEC("xdp.frags")
int rt_xdp_sizeclass(struct xdp_md *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 verdict = rt_monitor ? XDP_DROP : XDP_PASS;
	struct rt_counters *c;
	__u32 wire_len, cap_len;
	__u64 avail, wake;
	void *ring;

	c = rt_counters_for(RT_DIR_IN);
	if (!c)
		return verdict;
	c->seen++;
	c->matched++;
	wire_len = bpf_xdp_get_buff_len(ctx);
	cap_len = wire_len < rt_snaplen ? wire_len : rt_snaplen;
	ring = bpf_map_lookup_elem(&rt_rings, &cpu);
	if (!ring) {
		c->dropped++;
		return verdict;
	}
	avail = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	wake = avail + cap_len >= rt_wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	RT_CLASS(64)
	RT_CLASS(128)
	RT_CLASS(256)
	RT_CLASS(512)
	RT_CLASS(1024)
	RT_CLASS(2048)
	RT_CLASS(4096)
	RT_CLASS(9216)
	RT_CLASS(65535)
	return verdict;
}
