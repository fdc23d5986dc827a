// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Measurement only, not loaded by ringtap: the capture program with the copy
 * method that shipped before size classes, to compare with what ships now.
 * The frame is copied into this CPU's scratch buffer, then
 * bpf_ringbuf_output copies header + data into the ring: two copies, no
 * padding. No filter. See pkg/capture BenchmarkCopyMethod. */
#include "capture.c"

SEC("xdp.frags")
int rt_xdp_scratch(struct xdp_md *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 verdict = rt_monitor ? XDP_DROP : XDP_PASS;
	struct rt_counters *c;
	struct rt_scratch *s;
	__u32 wire_len, cap_len;
	void *ring;

	c = rt_counters_at(rt_prog_key);
	s = bpf_map_lookup_elem(&rt_scratch_map, &cpu);
	if (!c || !s)
		return verdict;
	c->seen++;
	c->matched++;
	wire_len = bpf_xdp_get_buff_len(ctx);
	cap_len = wire_len < rt_snaps[0] ? wire_len : rt_snaps[0];
	cap_len = rt_bound(cap_len, RT_WINDOW);
	if (bpf_xdp_load_bytes(ctx, 0, s->data, cap_len))
		return verdict;
	rt_header(&s->hdr, 1, wire_len, cap_len, ctx->ingress_ifindex, RT_DIR_IN, cpu, 0);
	ring = bpf_map_lookup_elem(&rt_rings, &cpu);
	if (!ring) {
		c->dropped++;
		return verdict;
	}
	if (bpf_ringbuf_output(ring, s, sizeof(s->hdr) + cap_len, rt_wake(ring, cap_len))) {
		c->dropped++;
		return verdict;
	}
	c->captured++;
	c->bytes += cap_len;
	return verdict;
}
