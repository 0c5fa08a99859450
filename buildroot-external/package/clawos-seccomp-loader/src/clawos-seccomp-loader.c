/*
 * clawos-seccomp-loader POLICY.bpf PROGRAM [ARG...]
 *
 * Installs the seccomp filter in POLICY.bpf (a raw array of struct
 * sock_filter, as libseccomp's seccomp_export_bpf writes it) on every thread,
 * with no_new_privs, then execs PROGRAM: the filter is inherited across exec
 * and can never be removed. Kept tiny and static so the image needs no
 * libseccomp.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int die(const char *what, const char *detail)
{
	fprintf(stderr, "clawos-seccomp-loader: %s: %s\n", what, detail);
	return 1;
}

int main(int argc, char **argv)
{
	struct sock_fprog fprog;
	struct sock_filter *prog;
	struct stat st;
	size_t size, got = 0;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: %s POLICY.bpf PROGRAM [ARG...]\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return die(argv[1], strerror(errno));
	if (fstat(fd, &st) != 0)
		return die(argv[1], strerror(errno));
	size = (size_t)st.st_size;
	/* A truncated or foreign file must not become a half-filter. */
	if (size == 0 || size % sizeof(*prog) != 0 || size / sizeof(*prog) > BPF_MAXINSNS)
		return die(argv[1], "not a seccomp BPF program (size is not a whole number of instructions)");
	prog = malloc(size);
	if (!prog)
		return die(argv[1], strerror(errno));
	while (got < size) {
		ssize_t n = read(fd, (char *)prog + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return die(argv[1], n < 0 ? strerror(errno) : "short read");
		got += (size_t)n;
	}
	close(fd);

	fprog.len = (unsigned short)(size / sizeof(*prog));
	fprog.filter = prog;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return die("PR_SET_NO_NEW_PRIVS", strerror(errno));
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog) != 0)
		return die("seccomp(SECCOMP_SET_MODE_FILTER)", strerror(errno));
	execvp(argv[2], argv + 2);
	fprintf(stderr, "clawos-seccomp-loader: exec %s: %s\n", argv[2], strerror(errno));
	return 127;
}
