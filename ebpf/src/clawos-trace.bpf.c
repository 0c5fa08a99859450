// SPDX-License-Identifier: GPL-2.0
/* B-02: execve and openat, seen at the raw syscall-entry tracepoint, as P1.3
 * events. Not the syscalls/sys_enter_* trace events: those need tracefs, which
 * the kernel's lockdown (confidentiality) hides, as it refuses
 * bpf_probe_read_kernel; a BTF tracepoint reads the registers and the task by
 * plain (verifier-checked) loads instead. The syscall numbers are the arch's,
 * set by the loader from the numbers the build read from the kernel tree.
 * Only processes the loader registers in `watched` are reported (the guest
 * check watches the one program it runs). */
#include "clawos-common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile long nr_execve = -1;
const volatile long nr_openat = -1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);   /* tgid */
	__type(value, __u8);
} watched SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(clawos_trace_sys_enter, struct pt_regs *regs, long id)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (id != nr_execve && id != nr_openat)
		return 0;
	if (!bpf_map_lookup_elem(&watched, &tgid))
		return 0;
	if (id == nr_execve) {
		struct ExecEvent *e = clawos_reserve(struct ExecEvent);
		struct task_struct *task;

		if (!e)
			return 0;
		clawos_header(&e->header, CLAWOS_EVENT_KIND_EXEC, sizeof(*e));
		task = bpf_get_current_task_btf();
		e->ppid = task->real_parent->tgid;
		bpf_probe_read_user_str(e->filename, sizeof(e->filename), (const char *)PT_REGS_PARM1(regs));
		bpf_ringbuf_submit(e, 0);
	} else {
		struct FileOpenEvent *e = clawos_reserve(struct FileOpenEvent);

		if (!e)
			return 0;
		clawos_header(&e->header, CLAWOS_EVENT_KIND_FILE_OPEN, sizeof(*e));
		e->dfd = (__s32)PT_REGS_PARM1(regs);
		e->flags = (__u32)PT_REGS_PARM3(regs);
		e->mode = (__u32)PT_REGS_PARM4_SYSCALL(regs);
		e->verdict = 0;
		bpf_probe_read_user_str(e->filename, sizeof(e->filename), (const char *)PT_REGS_PARM2(regs));
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}
