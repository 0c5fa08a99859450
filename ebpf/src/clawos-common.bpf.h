/* What every ClawOS eBPF program shares: the P1.3 ring buffer and the event header. */
#ifndef CLAWOS_COMMON_BPF_H
#define CLAWOS_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "clawos-events.h"

/* vmlinux.h carries types, not the UAPI macros. */
#define EPERM 1
#define AT_FDCWD -100

/* P1.3's ring buffer, under the spec's map name (the loader finds it by that name). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CLAWOS_RINGBUF_SIZE);
} CLAWOS_EVENTS SEC(".maps");

/* Header of an event of the current task. */
static __always_inline void clawos_header(struct EventHeader *h, __u32 kind, __u32 size)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();

	h->kind = kind;
	h->size = size;
	h->ts_ns = bpf_ktime_get_ns();
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->uid = (__u32)ug;
	h->gid = ug >> 32;
	h->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* A reserved ring buffer record, zeroed: P1.3 forbids leaking stale bytes to userspace. */
#define clawos_reserve(type) ({                                                     \
	type *__e = bpf_ringbuf_reserve(&CLAWOS_EVENTS, sizeof(type), 0);           \
	if (__e)                                                                    \
		__builtin_memset(__e, 0, sizeof(type));                             \
	__e;                                                                        \
})

#endif
