// SPDX-License-Identifier: GPL-2.0
/* B-04: XDP filter. TCP to a port the loader put into `allowed_tcp_ports`
 * (specs/ebpf/policy.yaml: 5432) passes, other TCP is dropped and reported on
 * the ring buffer; everything that is not TCP (ARP, ICMP …) passes. The
 * counters say what the program did. */
#include "clawos-common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define CLAWOS_ETH_P_IP 0x0800
#define CLAWOS_ETH_P_IPV6 0x86DD
#define CLAWOS_IPPROTO_TCP 6

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);   /* TCP destination port, host byte order */
	__type(value, __u8);
} allowed_tcp_ports SEC(".maps");

/* Index: 0 TCP passed, 1 TCP dropped, 2 not TCP (passed). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void clawos_count(__u32 i)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &i);

	if (c)
		__sync_fetch_and_add(c, 1);
}

SEC("xdp")
int clawos_xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;
	struct NetDropEvent *e;
	__u16 family, dport;
	__u8 *saddr, *daddr;
	__u32 alen;

	if ((void *)(eth + 1) > end)
		goto other;
	if (eth->h_proto == bpf_htons(CLAWOS_ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->protocol != CLAWOS_IPPROTO_TCP)
			goto other;
		tcp = (void *)ip + ip->ihl * 4;
		family = 2;
		saddr = (__u8 *)&ip->saddr;
		daddr = (__u8 *)&ip->daddr;
		alen = 4;
	} else if (eth->h_proto == bpf_htons(CLAWOS_ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != CLAWOS_IPPROTO_TCP)
			goto other;
		tcp = (void *)(ip6 + 1);
		family = 10;
		saddr = (__u8 *)&ip6->saddr;
		daddr = (__u8 *)&ip6->daddr;
		alen = 16;
	} else {
		goto other;
	}
	if ((void *)(tcp + 1) > end)
		goto other;
	dport = bpf_ntohs(tcp->dest);
	if (bpf_map_lookup_elem(&allowed_tcp_ports, &dport)) {
		clawos_count(0);
		return XDP_PASS;
	}
	clawos_count(1);
	e = clawos_reserve(struct NetDropEvent);
	if (e) {
		/* No process context in XDP: pid, uid and comm stay 0 (P1.3). */
		e->header.kind = CLAWOS_EVENT_KIND_NET_DROP;
		e->header.size = sizeof(*e);
		e->header.ts_ns = bpf_ktime_get_ns();
		e->ifindex = ctx->ingress_ifindex;
		e->action = CLAWOS_XDP_ACTION_DROP;
		e->family = family;
		e->protocol = CLAWOS_IPPROTO_TCP;
		e->src_port = bpf_ntohs(tcp->source);
		e->dst_port = dport;
		if (alen == 4) {
			__builtin_memcpy(e->saddr, saddr, 4);
			__builtin_memcpy(e->daddr, daddr, 4);
		} else {
			__builtin_memcpy(e->saddr, saddr, 16);
			__builtin_memcpy(e->daddr, daddr, 16);
		}
		bpf_ringbuf_submit(e, 0);
	}
	return XDP_DROP;
other:
	clawos_count(2);
	return XDP_PASS;
}
