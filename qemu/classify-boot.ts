/**
 * Turns a serial console capture into a boot verdict. Pure: no I/O, so recorded
 * captures (test/fixtures/serial-logs) and live boots are judged the same way.
 *
 * Guest protocol (the ClawOS init prints these):
 *   CLAWOS-INIT arch=<uname -m>
 *   CLAWOS-CHECK name=<id> result=<pass|fail> value=<free text to end of line>
 *   CLAWOS-BOOT-OK passed=<n>   |   CLAWOS-BOOT-FAILED failed=<id,id>
 * CLAWOS-CHECK lines without name=/result= (older captures) are informational.
 */

export type BootVerdict = 'PASS' | 'FAIL' | 'TIMEOUT' | 'INFRA_ERROR';

/** Why a boot failed; pipeline/outcome.ts FailureReason includes these (qemu/ must not import pipeline/). */
export type BootFailureReason =
  | 'boot-panic'
  | 'boot-oops'
  | 'boot-check-failed'
  | 'boot-marker-missing'
  | 'boot-no-console'
  | 'boot-timeout'
  | 'boot-firmware-refused'
  | 'infra';

export const STAGES = ['none', 'firmware', 'kernel', 'init', 'checks', 'marker'] as const;
export type BootStage = (typeof STAGES)[number];
export type ReachedStage = Exclude<BootStage, 'none'>;
export type StageTimes = Record<ReachedStage, number | null>;

/**
 * What each stage looks like on the console. A line may match several rows
 * ("EFI stub: Booting Linux Kernel..." is the kernel running); the highest wins.
 */
export const STAGE_PATTERNS: ReadonlyArray<{ stage: ReachedStage; pattern: RegExp }> = [
  { stage: 'firmware', pattern: /SeaBIOS|BdsDxe|UEFI firmware|Welcome to GRUB|EFI stub/ },
  { stage: 'kernel', pattern: /Linux version|Booting Linux/ },
  { stage: 'init', pattern: /CLAWOS-INIT\b|Run \/init as init process/ },
  { stage: 'checks', pattern: /CLAWOS-CHECK\b/ },
  { stage: 'marker', pattern: /CLAWOS-BOOT-(?:OK|FAILED)\b/ },
];

const PANIC = /Kernel panic - not syncing.*/;
const OOPS = /\b(?:Oops|BUG): .*/;
const NO_INITIAL_CONSOLE = /[Uu]nable to open an initial console/;
/** The firmware found nothing it could boot: waiting on only burns the timeout. */
const FIRMWARE_GAVE_UP = /No bootable device|No bootable option or device|UEFI Interactive Shell|Boot failed: not a bootable/;
/** The firmware refused the loader (Secure Boot: unsigned or tampered image): nothing later can change that. */
const FIRMWARE_REFUSED = /BdsDxe: failed to load .*(?:Access Denied|Security Violation)/;
/** The kernel's own banner: without it the kernel never reached its console. */
const KERNEL_BANNER = /Linux version \d/;
/** QEMU's own messages (stderr in captures made with 2>&1): not guest output. */
const HOST_LINE = /^qemu-system-[\w-]+: /;
const HOST_KILLED = /^qemu-system-[\w-]+: terminating on signal/;

const CHECK_LINE = /CLAWOS-CHECK\s+name=(\S+)\s+result=(\S+)(?:\s+value=(.*))?$/;
const BOOT_OK = /CLAWOS-BOOT-OK\b(?:\s+passed=(\d+))?/;
const BOOT_FAILED = /CLAWOS-BOOT-FAILED\b(?:\s+failed=(\S*))?/;

// CSI / OSC / two-byte escapes (SeaBIOS and GRUB paint the screen), then stray controls.
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]/g;
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI, '').replace(CONTROL, '');
}

export interface CheckResult {
  name: string;
  result: 'pass' | 'fail';
  value: string;
}

export interface ClassifyInput {
  /** The serial console, lines separated by \n (\r and escapes are tolerated). */
  log: string;
  /** Arrival time (ms since QEMU started) of each line of `log.split('\n')`. */
  lineTimesMs?: number[];
  /** Check names that must be reported with result=pass. */
  expectedChecks: readonly string[];
  /** Text the serial log must contain for a PASS (the kernel's own reports, e.g. that Secure Boot is on). */
  expectedLog?: readonly string[];
  /** QEMU was killed because the boot ran out of time. */
  timedOut?: boolean;
  /** QEMU could not run the guest at all; the text becomes the message. */
  infraError?: string;
}

export interface BootClassification {
  verdict: BootVerdict;
  /** null for PASS. */
  reason: BootFailureReason | null;
  stage: BootStage;
  stageMs: StageTimes;
  checks: CheckResult[];
  failedChecks: string[];
  missingChecks: string[];
  /** CLAWOS-CHECK lines of the older free-form kind. */
  infoChecks: string[];
  message: string;
}

const stageRank = (s: BootStage): number => STAGES.indexOf(s);

/** The highest stage a single (already stripped) console line shows. */
export function stageOfLine(line: string): BootStage {
  if (HOST_LINE.test(line)) return 'none';
  let best: BootStage = 'none';
  for (const { stage, pattern } of STAGE_PATTERNS) {
    if (pattern.test(line) && stageRank(stage) > stageRank(best)) best = stage;
  }
  return best;
}

/** After these lines the boot's verdict cannot improve: the caller may stop QEMU soon. */
export function isTerminalLine(rawLine: string): boolean {
  const line = stripAnsi(rawLine);
  if (HOST_LINE.test(line)) return false;
  return PANIC.test(line) || FIRMWARE_GAVE_UP.test(line) || FIRMWARE_REFUSED.test(line) || (/CLAWOS-BOOT-(?:OK|FAILED)\b/.test(line) && !CHECK_LINE.test(line));
}

function clip(s: string, max = 160): string {
  const t = s.trim().replace(/\s+/g, ' ');
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** "Kernel panic - not syncing: No working init found.  Try passing …" -> up to the first sentence end. */
function panicText(match: string): string {
  const m = /^(.*?)\.(?:\s|$)/.exec(match.trim());
  return clip(m ? m[1]! : match);
}

export function classifyBoot(input: ClassifyInput): BootClassification {
  const rawLines = input.log.split('\n');
  const stageMs: StageTimes = { firmware: null, kernel: null, init: null, checks: null, marker: null };
  let stage: BootStage = 'none';
  const checks = new Map<string, CheckResult>();
  const infoChecks: string[] = [];
  let panic: { text: string; idx: number } | undefined;
  let oops: { text: string; idx: number } | undefined;
  let marker: { ok: boolean; failedIds: string[] } | undefined;
  let noInitialConsole: string | undefined;
  let firmwareGaveUp: string | undefined;
  let bootOptionFailed: string | undefined;
  let refused: string | undefined;
  let kernelBanner = false;
  let killedInLog = false;
  let lastGuestLine = '';

  for (const [idx, raw] of rawLines.entries()) {
    const line = stripAnsi(raw).trimEnd();
    if (HOST_LINE.test(line)) {
      if (HOST_KILLED.test(line)) killedInLog = true;
      continue;
    }
    if (line.trim()) lastGuestLine = line;
    const s = stageOfLine(line);
    if (s !== 'none') {
      const t = input.lineTimesMs?.[idx];
      // Stages never shown (a direct kernel boot has no firmware banner) stay null.
      if (t !== undefined && stageMs[s] === null) stageMs[s] = t;
      if (stageRank(s) > stageRank(stage)) stage = s;
    }
    if (KERNEL_BANNER.test(line)) kernelBanner = true;
    const isProtocol = /CLAWOS-/.test(line);
    // A panic counts wherever it appears: the serial console can glue it onto a protocol line.
    const p = PANIC.exec(line);
    if (p && !panic) panic = { text: p[0], idx };
    if (!isProtocol) {
      const o = OOPS.exec(line);
      if (o && !oops) oops = { text: o[0], idx };
      if (!noInitialConsole && NO_INITIAL_CONSOLE.test(line)) noInitialConsole = line;
      if (!firmwareGaveUp && stage === 'firmware' && FIRMWARE_GAVE_UP.test(line)) firmwareGaveUp = line;
      if (!bootOptionFailed && /BdsDxe: failed to load/.test(line)) bootOptionFailed = line.slice(line.indexOf('BdsDxe'));
      if (!refused && FIRMWARE_REFUSED.test(line)) refused = line.slice(line.indexOf('BdsDxe'));
    }
    const chk = CHECK_LINE.exec(line);
    if (chk) {
      const name = chk[1]!;
      const result: CheckResult['result'] = chk[2]!.toLowerCase() === 'pass' ? 'pass' : 'fail';
      const prev = checks.get(name);
      // A check reported twice counts as failed if either report failed.
      if (!prev || prev.result === 'pass') checks.set(name, { name, result, value: (chk[3] ?? '').trim() });
    } else if (/CLAWOS-CHECK\b/.test(line)) {
      infoChecks.push(line.slice(line.indexOf('CLAWOS-CHECK') + 'CLAWOS-CHECK'.length).trim());
    } else {
      // Every marker counts: a BOOT-FAILED anywhere (even after a BOOT-OK) fails the boot.
      const f = BOOT_FAILED.exec(line);
      if (f && marker?.ok !== false) marker = { ok: false, failedIds: (f[1] ?? '').split(',').filter(Boolean) };
      else if (!f && !marker && BOOT_OK.test(line)) marker = { ok: true, failedIds: [] };
    }
  }
  // The kernel prints this right before it starts init.
  if (noInitialConsole && stageRank(stage) < stageRank('init')) stage = 'init';

  const checkList = [...checks.values()];
  const failed = checkList.filter((c) => c.result !== 'pass');
  const missingChecks = input.expectedChecks.filter((n) => !checks.has(n));
  const plainLog = rawLines.map((l) => stripAnsi(l)).join('\n');
  const missingLog = (input.expectedLog ?? []).filter((t) => !plainLog.includes(t));
  const base = {
    stage,
    stageMs,
    checks: checkList,
    failedChecks: failed.map((c) => c.name),
    missingChecks,
    infoChecks,
  };
  const last = lastGuestLine ? clip(stripAnsi(lastGuestLine)) : '';
  const lastOut = last ? `, last output: ${last}` : '';

  if (input.infraError !== undefined) {
    return { ...base, verdict: 'INFRA_ERROR', reason: 'infra', message: input.infraError };
  }
  // The first fatal kernel event is the cause; whatever the guest printed later is not trusted.
  const fatal = [panic && { kind: 'panic' as const, ...panic }, oops && { kind: 'oops' as const, ...oops }]
    .filter((x): x is NonNullable<typeof x> => Boolean(x))
    .sort((a, b) => a.idx - b.idx)[0];
  if (fatal?.kind === 'panic') {
    return { ...base, verdict: 'FAIL', reason: 'boot-panic', message: `kernel panic: ${panicText(fatal.text)}` };
  }
  if (fatal?.kind === 'oops') {
    return { ...base, verdict: 'FAIL', reason: 'boot-oops', message: `kernel oops: ${clip(fatal.text)}` };
  }
  if (marker) {
    const problems = [
      ...failed.map((c) => (c.value ? `${c.name} failed (${clip(c.value, 80)})` : `${c.name} failed`)),
      ...missingChecks.map((n) => `${n} missing`),
    ].join(', ');
    if (!marker.ok) {
      const ids = marker.failedIds.length ? ` failed=${marker.failedIds.join(',')}` : '';
      return {
        ...base,
        verdict: 'FAIL',
        reason: 'boot-check-failed',
        message: `CLAWOS-BOOT-FAILED${ids}${problems ? `: ${problems}` : ''}`,
      };
    }
    // Never trust the marker alone: every expected check must be there and pass.
    if (problems) {
      return { ...base, verdict: 'FAIL', reason: 'boot-check-failed', message: `CLAWOS-BOOT-OK but ${problems}` };
    }
    if (missingLog.length) {
      return { ...base, verdict: 'FAIL', reason: 'boot-check-failed', message: `CLAWOS-BOOT-OK but the serial log lacks ${missingLog.map((t) => JSON.stringify(t)).join(', ')}` };
    }
    const n = input.expectedChecks.length;
    return {
      ...base,
      verdict: 'PASS',
      reason: null,
      message: n ? `CLAWOS-BOOT-OK, all ${n} expected checks passed` : 'CLAWOS-BOOT-OK (no checks expected)',
    };
  }
  // Checked before the timeout: QEMU is stopped soon after these lines on purpose.
  if (refused) {
    return { ...base, stage: 'firmware', verdict: 'FAIL', reason: 'boot-firmware-refused', message: `the firmware refused the boot loader: ${clip(refused)}` };
  }
  if (firmwareGaveUp) {
    return { ...base, verdict: 'FAIL', reason: 'boot-marker-missing', message: `firmware found nothing to boot: ${clip(bootOptionFailed ?? firmwareGaveUp)}` };
  }
  if (input.timedOut || killedInLog) {
    const message = stage === 'none' ? 'timed out with no guest output' : `timed out at stage ${stage}${lastOut}`;
    return { ...base, verdict: 'TIMEOUT', reason: 'boot-timeout', message };
  }
  // The guest ended by itself without a verdict.
  if (noInitialConsole) {
    return { ...base, verdict: 'FAIL', reason: 'boot-marker-missing', message: `init has no console: ${clip(noInitialConsole)}` };
  }
  if (stage === 'none') {
    return { ...base, verdict: 'FAIL', reason: 'boot-no-console', message: 'guest exited with no output' };
  }
  if (stage === 'firmware' || (stage === 'kernel' && !kernelBanner)) {
    return {
      ...base,
      verdict: 'FAIL',
      reason: 'boot-no-console',
      message: `guest exited with no console output from the kernel${lastOut}`,
    };
  }
  return {
    ...base,
    verdict: 'FAIL',
    reason: 'boot-marker-missing',
    message: `guest exited at stage ${stage} without a CLAWOS-BOOT marker${lastOut}`,
  };
}
