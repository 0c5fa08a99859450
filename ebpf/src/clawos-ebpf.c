// SPDX-License-Identifier: GPL-2.0
/*
 * clawos-ebpf: the static loader of ClawOS's eBPF programs (libbpf linked in).
 *
 *   clawos-ebpf trace OBJ NR_EXECVE NR_OPENAT -- CMD [ARG...]
 *       load B-02's tracepoint program with the arch's execve and openat
 *       syscall numbers, run CMD watched, print its exec and openat events
 *   clawos-ebpf lsm OBJ POLICY -- CMD [ARG...]
 *       load B-03/F-03's LSM programs with POLICY in their maps, run CMD, print
 *       every denial event
 *   clawos-ebpf xdp OBJ POLICY IFNAME -- CMD [ARG...]
 *       attach B-04's XDP filter to IFNAME, run CMD, print the drop events and
 *       the program's counters
 *   clawos-ebpf policy POLICY
 *       parse POLICY and print what would go into the maps (no BPF)
 *   clawos-ebpf connect ADDR PORT SECONDS
 *       one TCP connect to an IPv4 address: "connect ok", "connect timeout" or
 *       "connect error errno=NAME" (the checks' probe; exit 0 only for ok)
 *
 * POLICY is the file the build generates from specs/ebpf/policy.yaml, one
 * entry a line ("protect-file PATH", "deny-exec PATH", "block-tcp-port N",
 * "xdp-allow-tcp-port N"; # comments). A file is keyed by its device and
 * inode, so it must exist when the policy loads. The programs stay attached
 * only while CMD runs: the loader exits after it.
 *
 * Output, one line each: "child pid=N ppid=M", "event kind=… field=value …",
 * "counters …", "exit status=N"; errors on stderr as "clawos-ebpf: …".
 * A program the verifier refuses is named, with the verifier's log (libbpf's
 * messages go to stderr). Exit: CMD's status, 2 usage, 3 bad policy, 4 load
 * or attach failure.
 */
#include <errno.h>
#include <limits.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/types.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "clawos-events.h"

#define MAX_ENTRIES 256

struct inode_key {
	__u64 dev;
	__u64 ino;
};

struct policy {
	int n_protect, n_deny, n_block, n_xdp;
	char *protect[MAX_ENTRIES], *deny[MAX_ENTRIES];
	struct inode_key protect_key[MAX_ENTRIES], deny_key[MAX_ENTRIES];
	__u16 block[MAX_ENTRIES], xdp[MAX_ENTRIES];
};

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("clawos-ebpf: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void usage(void)
{
	fputs("usage: clawos-ebpf trace OBJ NR_EXECVE NR_OPENAT -- CMD [ARG...]\n"
	      "       clawos-ebpf lsm OBJ POLICY -- CMD [ARG...]\n"
	      "       clawos-ebpf xdp OBJ POLICY IFNAME -- CMD [ARG...]\n"
	      "       clawos-ebpf policy POLICY\n"
	      "       clawos-ebpf connect ADDR PORT SECONDS\n", stderr);
	exit(2);
}

/* libbpf's messages (the verifier's log among them) go to stderr; each starts with "libbpf: ". */
static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* The kernel's dev_t of a stat's st_dev: MAJOR << 20 | MINOR (include/linux/kdev_t.h). */
static __u64 kernel_dev(dev_t d)
{
	return ((__u64)major(d) << 20) | minor(d);
}

static int parse_port(const char *s, __u16 *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*out = (__u16)v;
	return 0;
}

/* Read POLICY; every problem is exit 3 naming the file and line. */
static void read_policy(const char *path, struct policy *p)
{
	char line[PATH_MAX + 64], word[32], arg[PATH_MAX];
	FILE *f = fopen(path, "r");
	int n = 0;

	memset(p, 0, sizeof(*p));
	if (!f)
		die(3, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		struct stat st;
		char extra;
		int k;

		n++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		k = sscanf(line, "%31s %4095s %c", word, arg, &extra);
		if (k != 2)
			die(3, "%s:%d: want \"KEYWORD ARGUMENT\", got \"%s\"", path, n, line);
		if (!strcmp(word, "protect-file") || !strcmp(word, "deny-exec")) {
			int deny = word[0] == 'd';
			int *count = deny ? &p->n_deny : &p->n_protect;

			if (arg[0] != '/')
				die(3, "%s:%d: %s needs an absolute path, got \"%s\"", path, n, word, arg);
			if (stat(arg, &st))
				die(3, "%s:%d: %s %s: %s (a policy file must exist when the policy loads)", path, n, word, arg, strerror(errno));
			if (*count == MAX_ENTRIES)
				die(3, "%s:%d: more than %d %s entries", path, n, MAX_ENTRIES, word);
			(deny ? p->deny : p->protect)[*count] = strdup(arg);
			(deny ? p->deny_key : p->protect_key)[*count] = (struct inode_key){ kernel_dev(st.st_dev), st.st_ino };
			(*count)++;
		} else if (!strcmp(word, "block-tcp-port") || !strcmp(word, "xdp-allow-tcp-port")) {
			int xdp = word[0] == 'x';
			int *count = xdp ? &p->n_xdp : &p->n_block;
			__u16 port;

			if (parse_port(arg, &port))
				die(3, "%s:%d: %s needs a port 1-65535, got \"%s\"", path, n, word, arg);
			if (*count == MAX_ENTRIES)
				die(3, "%s:%d: more than %d %s entries", path, n, MAX_ENTRIES, word);
			(xdp ? p->xdp : p->block)[(*count)++] = port;
		} else {
			die(3, "%s:%d: unknown keyword \"%s\" (protect-file, deny-exec, block-tcp-port, xdp-allow-tcp-port)", path, n, word);
		}
	}
	fclose(f);
}

static void print_policy(const struct policy *p)
{
	int i;

	for (i = 0; i < p->n_protect; i++)
		printf("protect-file %s dev=%llu ino=%llu\n", p->protect[i], (unsigned long long)p->protect_key[i].dev, (unsigned long long)p->protect_key[i].ino);
	for (i = 0; i < p->n_deny; i++)
		printf("deny-exec %s dev=%llu ino=%llu\n", p->deny[i], (unsigned long long)p->deny_key[i].dev, (unsigned long long)p->deny_key[i].ino);
	for (i = 0; i < p->n_block; i++)
		printf("block-tcp-port %u\n", p->block[i]);
	for (i = 0; i < p->n_xdp; i++)
		printf("xdp-allow-tcp-port %u\n", p->xdp[i]);
}

/* ---- events (layouts from the generated P1.3 header) ---- */

static void print_str(const char *key, const char *s, size_t max)
{
	printf(" %s=%.*s", key, (int)strnlen(s, max), s);
}

static void print_header(const char *kind, const struct EventHeader *h)
{
	printf("event kind=%s size=%u pid=%u tid=%u uid=%u gid=%u", kind, h->size, h->pid, h->tid, h->uid, h->gid);
	print_str("comm", h->comm, sizeof(h->comm));
}

static void print_addr(const char *key, __u16 family, const __u8 *a)
{
	char buf[64];

	if (family == 2)
		snprintf(buf, sizeof(buf), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
	else
		snprintf(buf, sizeof(buf), "ipv6:%02x%02x..%02x%02x", a[0], a[1], a[14], a[15]);
	printf(" %s=%s", key, buf);
}

static int on_event(void *ctx, void *data, size_t len)
{
	const struct EventHeader *h = data;

	(void)ctx;
	if (len < sizeof(*h) || h->size != len) {
		printf("event bad-size len=%zu\n", len);
		return 0;
	}
	switch (h->kind) {
	case CLAWOS_EVENT_KIND_EXEC: {
		const struct ExecEvent *e = data;

		print_header("exec", h);
		printf(" ppid=%u", e->ppid);
		print_str("filename", e->filename, sizeof(e->filename));
		break;
	}
	case CLAWOS_EVENT_KIND_FILE_OPEN: {
		const struct FileOpenEvent *e = data;

		print_header("file_open", h);
		printf(" dfd=%d flags=%u mode=%u verdict=%d", e->dfd, e->flags, e->mode, e->verdict);
		print_str("filename", e->filename, sizeof(e->filename));
		break;
	}
	case CLAWOS_EVENT_KIND_SOCKET_CONNECT: {
		const struct SocketConnectEvent *e = data;

		print_header("socket_connect", h);
		printf(" family=%u protocol=%u port=%u verdict=%d", e->family, e->protocol, e->port, e->verdict);
		print_addr("addr", e->family, e->addr);
		break;
	}
	case CLAWOS_EVENT_KIND_NET_DROP: {
		const struct NetDropEvent *e = data;

		print_header("net_drop", h);
		printf(" ifindex=%u action=%u family=%u protocol=%u src_port=%u dst_port=%u", e->ifindex, e->action, e->family, e->protocol, e->src_port, e->dst_port);
		print_addr("saddr", e->family, e->saddr);
		print_addr("daddr", e->family, e->daddr);
		break;
	}
	case CLAWOS_EVENT_KIND_LSM_DENY: {
		const struct LsmDenyEvent *e = data;

		print_header("lsm_deny", h);
		printf(" hook=%u ret=%d", e->hook, e->ret);
		print_str("target", e->target, sizeof(e->target));
		break;
	}
	default:
		printf("event kind=%u size=%u", h->kind, h->size);
	}
	putchar('\n');
	return 0;
}

/* ---- loading ---- */

/* Set `const volatile long NAME` in the object's .rodata before it loads (the verifier then sees a constant). */
static void set_rodata_long(struct bpf_object *obj, const char *path, const char *name, long value)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, ".rodata");
	const struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec;
	size_t size;
	char *data;
	int id, i;

	if (!map || !btf || (id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC)) < 0)
		die(4, "%s: no .rodata with BTF", path);
	data = (char *)bpf_map__initial_value(map, &size);
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *var = btf__type_by_id(btf, vs->type);

		if (!strcmp(btf__name_by_offset(btf, var->name_off), name) && vs->size == sizeof(long) && vs->offset + sizeof(long) <= size) {
			memcpy(data + vs->offset, &value, sizeof(long));
			return;
		}
	}
	die(4, "%s: no variable %s in .rodata", path, name);
}

/*
 * Lockdown (confidentiality) refuses bpf_probe_read_kernel, so libbpf's probe for
 * it fails and libbpf then rewrites every bpf_probe_read_user[_str] call into the
 * legacy bpf_probe_read[_str], which lockdown refuses too. The user-memory
 * helpers themselves are allowed: this handler of B-02's tp_btf section, run
 * after libbpf's rewrite and before the load, puts them back (the programs never
 * call the legacy helpers) and names the BTF tracepoint to attach to, which
 * libbpf's own tp_btf handler would have done.
 */
static int tp_btf_id = -1;

static int prepare_tp_btf(struct bpf_program *prog, struct bpf_prog_load_opts *opts, long cookie)
{
	struct bpf_insn *insn = (struct bpf_insn *)bpf_program__insns(prog);
	size_t i, n = bpf_program__insn_cnt(prog);

	(void)cookie;
	for (i = 0; i < n; i++) {
		if (insn[i].code != (BPF_JMP | BPF_CALL) || insn[i].src_reg != 0)
			continue;
		if (insn[i].imm == BPF_FUNC_probe_read_str)
			insn[i].imm = BPF_FUNC_probe_read_user_str;
		else if (insn[i].imm == BPF_FUNC_probe_read)
			insn[i].imm = BPF_FUNC_probe_read_user;
	}
	opts->expected_attach_type = BPF_TRACE_RAW_TP;
	opts->attach_btf_id = tp_btf_id;
	return 0;
}

/* The BTF id of the raw tracepoint a "tp_btf/NAME" program attaches to: typedef btf_trace_NAME. */
static void find_tp_btf(struct bpf_program *prog, const char *path)
{
	const char *sec = bpf_program__section_name(prog);
	struct btf *vmlinux = btf__load_vmlinux_btf();
	char name[128];

	if (!vmlinux)
		die(4, "cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): %s", strerror(errno));
	snprintf(name, sizeof(name), "btf_trace_%s", strchr(sec, '/') ? strchr(sec, '/') + 1 : sec);
	tp_btf_id = btf__find_by_name_kind(vmlinux, name, BTF_KIND_TYPEDEF);
	if (tp_btf_id < 0)
		die(4, "%s: the kernel has no raw tracepoint %s (%s)", path, name + 10, sec);
	btf__free(vmlinux);
}

static long parse_nr(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 0 || v > 4095)
		die(2, "a syscall number must be 0-4095, got \"%s\"", s);
	return v;
}

static struct bpf_object *open_obj(const char *path)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);

	if (!obj)
		die(4, "%s: cannot open: %s", path, strerror(errno));
	return obj;
}

static struct bpf_object *load_obj(struct bpf_object *obj, const char *path)
{
	struct bpf_program *prog;
	int err;

	err = bpf_object__load(obj);
	if (err) {
		/* libbpf printed the verifier's log above; name what failed to load. */
		bpf_object__for_each_program(prog, obj)
			if (bpf_program__fd(prog) < 0)
				fprintf(stderr, "clawos-ebpf: %s: program %s (section %s) was not loaded\n", path, bpf_program__name(prog), bpf_program__section_name(prog));
		die(4, "%s: load failed: %s", path, strerror(-err));
	}
	return obj;
}

static int map_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, name);

	if (!m)
		die(4, "the object has no map %s", name);
	return bpf_map__fd(m);
}

static void put(int fd, const void *key, const char *what)
{
	__u8 one = 1;

	if (bpf_map_update_elem(fd, key, &one, BPF_ANY))
		die(4, "cannot add %s to its map: %s", what, strerror(errno));
}

static void attach_all(struct bpf_object *obj, const char *path)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__attach(prog))
			die(4, "%s: cannot attach %s (section %s): %s", path, bpf_program__name(prog), bpf_program__section_name(prog), strerror(errno));
	}
}

/*
 * Fork CMD, stopped on a pipe until `ready` registered it (trace), then run it
 * and wait; returns its wait status.
 */
static int run_cmd(char **cmd, struct bpf_object *obj, int watch)
{
	int gate[2], status;
	pid_t pid;
	char go;

	if (pipe(gate))
		die(4, "pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die(4, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(gate[1]);
		if (read(gate[0], &go, 1) != 1)
			_exit(127);
		/*
		 * B-02 reads execve's filename at syscall entry, where a page that is
		 * not resident cannot be faulted in: the read then comes back empty (seen
		 * in one aarch64 boot of 2026-12-06). Writing each byte makes the page this
		 * process's own and present.
		 */
		for (char *p = cmd[0]; *p; p++)
			*(volatile char *)p = *p;
		execv(cmd[0], cmd);
		fprintf(stderr, "clawos-ebpf: exec %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	close(gate[0]);
	if (watch) {
		__u32 tgid = pid;
		__u8 one = 1;

		if (bpf_map_update_elem(map_fd(obj, "watched"), &tgid, &one, BPF_ANY))
			die(4, "cannot watch pid %d: %s", pid, strerror(errno));
	}
	printf("child pid=%d ppid=%d\n", pid, getpid());
	fflush(stdout);
	if (write(gate[1], "g", 1) != 1)
		die(4, "cannot start the command: %s", strerror(errno));
	close(gate[1]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die(4, "waitpid: %s", strerror(errno));
	return status;
}

static int drain(struct bpf_object *obj)
{
	struct ring_buffer *rb = ring_buffer__new(map_fd(obj, "CLAWOS_EVENTS"), on_event, NULL, NULL);
	int n;

	if (!rb)
		die(4, "cannot open the ring buffer: %s", strerror(errno));
	n = ring_buffer__consume(rb);
	ring_buffer__free(rb);
	return n;
}

static int finish(int status)
{
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

	printf("exit status=%d\n", code);
	fflush(stdout);
	return code;
}

static const char *errno_name(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ENETUNREACH: return "ENETUNREACH";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	default: return "other";
	}
}

/* One TCP connect, bounded by `seconds`: a dropped SYN shows as a timeout, an LSM denial as EPERM. */
static int probe_connect(const char *addr, const char *port_s, const char *seconds_s)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct pollfd pfd;
	socklen_t len = sizeof(int);
	__u16 port;
	int fd, err = 0, seconds = atoi(seconds_s);

	if (parse_port(port_s, &port) || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 || seconds < 1 || seconds > 60)
		die(2, "connect wants an IPv4 address, a port 1-65535 and 1-60 seconds, got %s %s %s", addr, port_s, seconds_s);
	sa.sin_port = htons(port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die(4, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		goto ok;
	if (errno != EINPROGRESS) {
		err = errno;
		goto bad;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	if (poll(&pfd, 1, seconds * 1000) == 0) {
		printf("connect timeout addr=%s port=%u seconds=%d\n", addr, port, seconds);
		return 1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err)
		goto bad;
ok:
	printf("connect ok addr=%s port=%u\n", addr, port);
	close(fd);
	return 0;
bad:
	printf("connect error errno=%s addr=%s port=%u (%s)\n", errno_name(err), addr, port, strerror(err));
	return 1;
}

/* argv after the fixed arguments must be "-- CMD [ARG...]" with CMD an absolute path. */
static char **command_of(int argc, char **argv, int at)
{
	if (at + 1 >= argc || strcmp(argv[at], "--"))
		usage();
	if (argv[at + 1][0] != '/')
		die(2, "CMD must be an absolute path, got \"%s\"", argv[at + 1]);
	return argv + at + 1;
}

int main(int argc, char **argv)
{
	struct policy pol;
	struct bpf_object *obj;
	const char *mode = argc > 1 ? argv[1] : "";
	char **cmd;
	int status, i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	libbpf_set_print(print_libbpf);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);

	if (!strcmp(mode, "policy") && argc == 3) {
		read_policy(argv[2], &pol);
		print_policy(&pol);
		return 0;
	}
	if (!strcmp(mode, "connect") && argc == 5)
		return probe_connect(argv[2], argv[3], argv[4]);
	if (!strcmp(mode, "trace") && argc >= 7) {
		long nr_execve = parse_nr(argv[3]), nr_openat = parse_nr(argv[4]);

		struct libbpf_prog_handler_opts h = { .sz = sizeof(h), .prog_prepare_load_fn = prepare_tp_btf };
		struct bpf_program *prog;

		cmd = command_of(argc, argv, 5);
		if (libbpf_register_prog_handler("tp_btf/", BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, &h) < 0)
			die(4, "cannot register the tp_btf handler");
		obj = open_obj(argv[2]);
		set_rodata_long(obj, argv[2], "nr_execve", nr_execve);
		set_rodata_long(obj, argv[2], "nr_openat", nr_openat);
		prog = bpf_object__find_program_by_name(obj, "clawos_trace_sys_enter");
		if (!prog)
			die(4, "%s: no program clawos_trace_sys_enter", argv[2]);
		find_tp_btf(prog, argv[2]);
		load_obj(obj, argv[2]);
		if (bpf_raw_tracepoint_open(NULL, bpf_program__fd(prog)) < 0)
			die(4, "%s: cannot attach clawos_trace_sys_enter (%s): %s", argv[2], bpf_program__section_name(prog), strerror(errno));
		status = run_cmd(cmd, obj, 1);
		drain(obj);
		return finish(status);
	}
	if (!strcmp(mode, "lsm") && argc >= 6) {
		int fd_p, fd_d, fd_b;

		cmd = command_of(argc, argv, 4);
		read_policy(argv[3], &pol);
		obj = load_obj(open_obj(argv[2]), argv[2]);
		fd_p = map_fd(obj, "protected_files");
		fd_d = map_fd(obj, "denied_exec");
		fd_b = map_fd(obj, "blocked_ports");
		for (i = 0; i < pol.n_protect; i++)
			put(fd_p, &pol.protect_key[i], pol.protect[i]);
		for (i = 0; i < pol.n_deny; i++)
			put(fd_d, &pol.deny_key[i], pol.deny[i]);
		for (i = 0; i < pol.n_block; i++)
			put(fd_b, &pol.block[i], "a blocked port");
		attach_all(obj, argv[2]);
		printf("policy protect-file=%d deny-exec=%d block-tcp-port=%d\n", pol.n_protect, pol.n_deny, pol.n_block);
		status = run_cmd(cmd, obj, 0);
		drain(obj);
		return finish(status);
	}
	if (!strcmp(mode, "xdp") && argc >= 7) {
		struct bpf_program *prog;
		unsigned int ifindex;
		__u64 c[3] = { 0, 0, 0 };
		__u32 k;
		int fd_a, fd_c, err;

		cmd = command_of(argc, argv, 5);
		read_policy(argv[3], &pol);
		ifindex = if_nametoindex(argv[4]);
		if (!ifindex)
			die(2, "no interface %s: %s", argv[4], strerror(errno));
		obj = load_obj(open_obj(argv[2]), argv[2]);
		fd_a = map_fd(obj, "allowed_tcp_ports");
		fd_c = map_fd(obj, "counters");
		for (i = 0; i < pol.n_xdp; i++)
			put(fd_a, &pol.xdp[i], "an allowed port");
		prog = bpf_object__find_program_by_name(obj, "clawos_xdp_filter");
		if (!prog)
			die(4, "%s: no program clawos_xdp_filter", argv[2]);
		/* Native (driver) mode: veth runs XDP programs itself. */
		err = bpf_xdp_attach(ifindex, bpf_program__fd(prog), XDP_FLAGS_DRV_MODE, NULL);
		if (err)
			die(4, "cannot attach clawos_xdp_filter to %s: %s", argv[4], strerror(-err));
		printf("xdp attached ifname=%s ifindex=%u allow-tcp-ports=%d\n", argv[4], ifindex, pol.n_xdp);
		status = run_cmd(cmd, obj, 0);
		bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, NULL);
		drain(obj);
		for (k = 0; k < 3; k++)
			if (bpf_map_lookup_elem(fd_c, &k, &c[k]))
				die(4, "cannot read counter %u: %s", k, strerror(errno));
		printf("counters tcp_pass=%llu tcp_drop=%llu other=%llu\n", (unsigned long long)c[0], (unsigned long long)c[1], (unsigned long long)c[2]);
		return finish(status);
	}
	usage();
	return 2;
}
