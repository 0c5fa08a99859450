// SPDX-License-Identifier: GPL-2.0
/* B-03 and F-03: BPF LSM hooks. The policy is data the loader puts into the
 * maps from the generated policy file (specs/ebpf/policy.yaml), never constants
 * here: files by (device, inode), so a rename or a hard link does not escape,
 * and TCP destination ports. A denial returns -EPERM and is reported on the
 * ring buffer; the LSM stack runs every LSM, so an AppArmor denial still holds
 * where this one allows, and this one where AppArmor allows.
 * Kernel memory is read by plain loads through BTF pointers (checked by the
 * verifier), never bpf_probe_read_kernel, which lockdown (confidentiality)
 * refuses; the file hooks are sleepable so they may name the path (bpf_d_path). */
#include "clawos-common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct clawos_inode_key {
	__u64 dev; /* the kernel's dev_t (MAJOR << 20 | MINOR) */
	__u64 ino;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct clawos_inode_key);
	__type(value, __u8);
} protected_files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct clawos_inode_key);
	__type(value, __u8);
} denied_exec SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);   /* TCP destination port, host byte order */
	__type(value, __u8);
} blocked_ports SEC(".maps");

static __always_inline struct clawos_inode_key clawos_key(struct file *file)
{
	struct clawos_inode_key k = {
		.dev = file->f_inode->i_sb->s_dev,
		.ino = file->f_inode->i_ino,
	};
	return k;
}

SEC("lsm.s/file_open")
int BPF_PROG(clawos_file_open, struct file *file, int ret)
{
	struct clawos_inode_key k;
	struct FileOpenEvent *e;

	if (ret)
		return ret;
	k = clawos_key(file);
	if (!bpf_map_lookup_elem(&protected_files, &k))
		return 0;
	e = clawos_reserve(struct FileOpenEvent);
	if (e) {
		clawos_header(&e->header, CLAWOS_EVENT_KIND_FILE_OPEN, sizeof(*e));
		e->dfd = AT_FDCWD;
		e->flags = file->f_flags;
		e->mode = file->f_mode;
		e->verdict = -EPERM;
		bpf_d_path((struct path *)&file->f_path, e->filename, sizeof(e->filename));
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

SEC("lsm.s/bprm_check_security")
int BPF_PROG(clawos_bprm_check, struct linux_binprm *bprm, int ret)
{
	struct clawos_inode_key k;
	struct LsmDenyEvent *e;

	if (ret)
		return ret;
	k = clawos_key(bprm->file);
	if (!bpf_map_lookup_elem(&denied_exec, &k))
		return 0;
	e = clawos_reserve(struct LsmDenyEvent);
	if (e) {
		clawos_header(&e->header, CLAWOS_EVENT_KIND_LSM_DENY, sizeof(*e));
		e->hook = CLAWOS_LSM_HOOK_BPRM_CHECK_SECURITY;
		e->ret = -EPERM;
		bpf_d_path((struct path *)&bprm->file->f_path, e->target, sizeof(e->target));
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

#define CLAWOS_AF_INET 2
#define CLAWOS_AF_INET6 10
#define CLAWOS_IPPROTO_TCP 6

SEC("lsm/socket_connect")
int BPF_PROG(clawos_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	struct SocketConnectEvent *e;
	struct sock *sk;
	__u16 family, port, protocol;

	if (ret)
		return ret;
	family = address->sa_family;
	if (family != CLAWOS_AF_INET && family != CLAWOS_AF_INET6)
		return 0;
	/* Linux 6.12's verifier types sock->sk as trusted_ptr_or_null: check it first. */
	sk = sock->sk;
	if (!sk)
		return 0;
	protocol = sk->sk_protocol;
	if (protocol != CLAWOS_IPPROTO_TCP || addrlen < 4)
		return 0;
	/* sin_port and sin6_port follow the family, in network byte order. */
	port = (__u16)((__u8)address->sa_data[0] << 8 | (__u8)address->sa_data[1]);
	if (!bpf_map_lookup_elem(&blocked_ports, &port))
		return 0;
	e = clawos_reserve(struct SocketConnectEvent);
	if (e) {
		clawos_header(&e->header, CLAWOS_EVENT_KIND_SOCKET_CONNECT, sizeof(*e));
		e->family = family;
		e->protocol = protocol;
		e->port = port;
		/* IPv4: sin_addr follows the port; an IPv6 address lies beyond struct sockaddr and is left 0. */
		if (family == CLAWOS_AF_INET) {
			e->addr[0] = address->sa_data[2];
			e->addr[1] = address->sa_data[3];
			e->addr[2] = address->sa_data[4];
			e->addr[3] = address->sa_data[5];
		}
		e->verdict = -EPERM;
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}
