/**
 * The boots in a boot step's result data (a list of qemu/boot.ts BootRecords, as
 * the qemu-boot step returns it), for Step.bootReports. Anything else reports none.
 */
import type { BootReport } from '../catalog/step.js';

type Loose = Record<string, unknown>;

function isRecordList(data: unknown): data is Loose[] {
  return (
    Array.isArray(data) &&
    data.length > 0 &&
    data.every((b: unknown) => !!b && typeof b === 'object' && ['arch', 'variant', 'verdict', 'serial_log'].every((k) => typeof (b as Loose)[k] === 'string'))
  );
}

const orNull = <T>(v: unknown, ok: (v: unknown) => v is T): T | null => (ok(v) ? v : null);
const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number';
const isObject = (v: unknown): v is Record<string, number | null> => !!v && typeof v === 'object';

export function bootReportsOf(data: unknown): BootReport[] {
  if (!isRecordList(data)) return [];
  return data.map((b) => ({
    arch: String(b.arch),
    variant: String(b.variant),
    verdict: String(b.verdict),
    reason: orNull(b.reason, isString),
    stage: orNull(b.stage, isString),
    stage_ms: orNull(b.stage_ms, isObject),
    message: isString(b.message) ? b.message : '',
    accel: orNull(b.accel, isString),
    duration_ms: orNull(b.duration_ms, isNumber),
    serial_log: String(b.serial_log),
    record: `${String(b.variant)}.json`,
  }));
}
