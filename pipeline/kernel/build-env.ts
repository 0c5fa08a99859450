/** Environment that makes a kernel build reproducible from SOURCE_DATE_EPOCH. */

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * `date -u` style ("Tue Nov 14 22:13:20 UTC 2023"): Linux puts
 * KBUILD_BUILD_TIMESTAMP verbatim into `uname -v` and also feeds it to
 * `date -d` (gen_initramfs.sh) and `tar --mtime` (gen_kheaders.sh), so it must
 * read well and parse; "@<epoch>" would parse but show up raw in uname -v.
 */
export function kbuildTimestamp(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  const p2 = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${p2(d.getUTCDate())} ${p2(d.getUTCHours())}:${p2(
    d.getUTCMinutes(),
  )}:${p2(d.getUTCSeconds())} UTC ${d.getUTCFullYear()}`;
}

/**
 * In every kernel build's compiler. gcc records its command line in each
 * object's DW_AT_producer, and a compile run elsewhere (an icecream daemon adds
 * -fdirectives-only and --param=ggc-min-*) would record another one: the debug
 * info, vmlinux's build-id and with it the image would differ from a local build.
 * In CC rather than KCFLAGS: arch/x86/boot (always -g), the x86 decompressor and
 * the vDSOs set their own KBUILD_CFLAGS and never see KCFLAGS.
 */
export const KBUILD_REPRODUCIBLE_CFLAGS = '-gno-record-gcc-switches';

/** make's CC= for a kernel build: the arch's gcc, run through `wrapper` (icecc) when given. */
export function kbuildCompiler(crossCompile: string, wrapper?: string): string {
  return `CC=${wrapper ? `${wrapper} ` : ''}${crossCompile}gcc ${KBUILD_REPRODUCIBLE_CFLAGS}`;
}

export function kbuildEnv(epochSeconds: number): Record<string, string> {
  return {
    KBUILD_BUILD_TIMESTAMP: kbuildTimestamp(epochSeconds),
    KBUILD_BUILD_USER: 'clawos',
    KBUILD_BUILD_HOST: 'clawos-build',
    KBUILD_BUILD_VERSION: '1',
    SOURCE_DATE_EPOCH: String(epochSeconds),
    // Messages in the log the same on every machine.
    LC_ALL: 'C',
  };
}
