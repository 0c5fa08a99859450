/**
 * The guest's kernel-log check (checks.sh check_kernel_log) run on the build host
 * under busybox sh, with `dmesg` printing a file: the protocol line /init's
 * report() prints for it (same format), and its status.
 */
import { join } from 'node:path';
import { run } from '../../lib/proc.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { DEFAULT_OVERLAY } from '../../pipeline/steps/rootfs.js';

export const GUEST_LIB = join(repoRootDir(), DEFAULT_OVERLAY, 'usr/lib/clawos');
export const KERNEL_LOG_PATTERNS = join(GUEST_LIB, 'kernel-log.patterns');

export async function scanKernelLog(dmesgFile: string, o: { tmpDir: string; env?: Record<string, string> }): Promise<{ line: string; rc: string }> {
  const r = await run(
    [
      'busybox',
      'sh',
      '-c',
      `. ${GUEST_LIB}/checks.sh
dmesg() { cat "$DMESG_FILE"; }
VALUE=
check_kernel_log
rc=$?
printf 'CLAWOS-CHECK name=%s result=%s value=%s\\n' kernel-log "$([ $rc = 0 ] && echo pass || echo fail)" "\${VALUE//[[:space:]]/ }"
echo "rc=$rc"`,
    ],
    { captureStdout: true, env: { DMESG_FILE: dmesgFile, TMPDIR: o.tmpDir, KERNEL_LOG_PATTERNS, ...o.env } },
  );
  const lines = r.stdout.trimEnd().split('\n');
  return { line: lines[0]!, rc: lines[1]! };
}
