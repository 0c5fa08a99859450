/*
 * clawos-seccomp-exec: apply a compiled seccomp filter, then exec a command.
 *
 *   clawos-seccomp-exec FILTER.bpf -- CMD [ARG...]
 *       Sets no_new_privs, installs FILTER.bpf (a raw struct sock_filter
 *       array, as clawos-build's seccomp-compile step writes it) with
 *       seccomp(SECCOMP_SET_MODE_FILTER), then execs CMD. The filter is
 *       inherited across exec and can never be removed. It must allow execve
 *       (the whitelist's allow_exec) or CMD never starts.
 *
 *   clawos-seccomp-exec --probe FILTER.bpf NAME=NR...
 *       For each NAME=NR: fork a child that installs the filter and then
 *       makes the raw syscall NR with all six arguments 0, and print one line
 *           NAME NR allowed ret=R | NAME NR errno EPERM | NAME NR killed SIGSYS
 *       No exec and no libc wrapper is involved after the filter is in place:
 *       the child records its progress in shared memory (a plain store, no
 *       syscall), so the result does not depend on what the filter lets the
 *       child do afterwards. Pick syscalls that are harmless with zero
 *       arguments (getpid, getppid …). Exit 0 when every probe gave a result.
 *
 * Static, no libseccomp: the same source is built by clawos-build (C-08, for
 * the busybox image) and by this Buildroot package.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "clawos-seccomp-exec"

static void usage(void)
{
	fprintf(stderr,
		"usage: " PROG " FILTER.bpf -- CMD [ARG...]\n"
		"       " PROG " --probe FILTER.bpf NAME=NR...\n");
}

/* Read FILTER.bpf; on error print why and return -1. */
static int read_filter(const char *path, struct sock_fprog *fprog)
{
	struct sock_filter *prog;
	struct stat st;
	size_t size, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		return -1;
	}
	size = (size_t)st.st_size;
	/* A truncated or foreign file must not become a half-filter. */
	if (size == 0 || size % sizeof(*prog) != 0 || size / sizeof(*prog) > BPF_MAXINSNS) {
		fprintf(stderr, PROG ": %s: not a seccomp BPF program (%zu bytes is not 1..%d whole instructions)\n",
			path, size, BPF_MAXINSNS);
		close(fd);
		return -1;
	}
	prog = malloc(size);
	if (!prog) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	while (got < size) {
		ssize_t n = read(fd, (char *)prog + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, PROG ": %s: %s\n", path, n < 0 ? strerror(errno) : "short read");
			close(fd);
			free(prog);
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	fprog->len = (unsigned short)(size / sizeof(*prog));
	fprog->filter = prog;
	return 0;
}

/* no_new_privs, then the filter; returns 0 or an errno value. */
static int install(const struct sock_fprog *fprog, const char **what)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		*what = "prctl(PR_SET_NO_NEW_PRIVS)";
		return errno;
	}
#ifdef __NR_seccomp
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, fprog) != 0) {
		*what = "seccomp(SECCOMP_SET_MODE_FILTER)";
		return errno;
	}
#else
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog, 0, 0) != 0) {
		*what = "prctl(PR_SET_SECCOMP)";
		return errno;
	}
#endif
	return 0;
}

/* What a probe child leaves for its parent. */
struct probe_state {
	volatile int stage; /* 0 started, 1 filter installed, 2 syscall returned, -1 install failed */
	volatile long ret;
	volatile int err;
};

/* The errno names a probe can meet; strerrorname_np is glibc-only and Buildroot builds with musl. */
static const char *errname(int e, char *buf, size_t len)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EBADF: return "EBADF";
	case ECHILD: return "ECHILD";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case ENOSYS: return "ENOSYS";
	}
	snprintf(buf, len, "%d", e);
	return buf;
}

/* One probe: returns 0 when a result was printed. */
static int probe(const struct sock_fprog *fprog, const char *spec)
{
	const char *eq = strchr(spec, '=');
	char *end;
	long nr;
	pid_t pid;
	int status;
	struct probe_state *st;

	if (!eq || eq == spec || !eq[1]) {
		fprintf(stderr, PROG ": --probe takes NAME=NR, not \"%s\"\n", spec);
		return 2;
	}
	errno = 0;
	nr = strtol(eq + 1, &end, 10);
	if (errno || *end || nr < 0) {
		fprintf(stderr, PROG ": --probe %s: NR must be a syscall number\n", spec);
		return 2;
	}
	st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st == MAP_FAILED) {
		fprintf(stderr, PROG ": mmap: %s\n", strerror(errno));
		return 1;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		const char *what = "";
		struct rlimit none = { 0, 0 };
		long r;
		int e;

		/* A killed probe must not leave a core file behind. */
		setrlimit(RLIMIT_CORE, &none);
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		e = install(fprog, &what);
		if (e) {
			st->err = e;
			st->stage = -1;
			_exit(1);
		}
		st->stage = 1;
		r = syscall(nr, 0L, 0L, 0L, 0L, 0L, 0L);
		st->err = r < 0 ? errno : 0;
		st->ret = r;
		st->stage = 2;
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, PROG ": waitpid: %s\n", strerror(errno));
			return 1;
		}
	}
	int name_len = (int)(eq - spec);
	char ebuf[16];
	if (st->stage == 2 && st->ret >= 0)
		printf("%.*s %ld allowed ret=%ld\n", name_len, spec, nr, st->ret);
	else if (st->stage == 2)
		printf("%.*s %ld errno %s\n", name_len, spec, nr, errname(st->err, ebuf, sizeof(ebuf)));
	else if (st->stage == 1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		printf("%.*s %ld killed SIGSYS\n", name_len, spec, nr);
	else {
		if (st->stage == -1)
			fprintf(stderr, PROG ": installing the filter failed: %s\n", strerror(st->err));
		printf("%.*s %ld unknown stage=%d status=0x%x\n", name_len, spec, nr, st->stage, status);
		munmap(st, sizeof(*st));
		return 1;
	}
	fflush(stdout);
	munmap(st, sizeof(*st));
	return 0;
}

int main(int argc, char **argv)
{
	struct sock_fprog fprog;
	const char *what = "";
	int e;

	if (argc >= 4 && strcmp(argv[1], "--probe") == 0) {
		int rc = 0;
		if (read_filter(argv[2], &fprog) != 0)
			return 1;
		for (int i = 3; i < argc; i++) {
			int r = probe(&fprog, argv[i]);
			if (r == 2) {
				usage();
				return 2;
			}
			if (r)
				rc = 1;
		}
		return rc;
	}
	if (argc < 4 || strcmp(argv[2], "--") != 0 || argv[1][0] == '-') {
		usage();
		return 2;
	}
	if (read_filter(argv[1], &fprog) != 0)
		return 1;
	e = install(&fprog, &what);
	if (e) {
		fprintf(stderr, PROG ": %s: %s\n", what, strerror(e));
		return 1;
	}
	execvp(argv[3], argv + 3);
	/* Reached only when the filter let execve fail (errno mode) or CMD is missing. */
	fprintf(stderr, PROG ": exec %s: %s\n", argv[3], strerror(errno));
	return 127;
}
