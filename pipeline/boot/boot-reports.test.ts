import { describe, expect, it } from 'vitest';
import { bootReportsOf } from './boot-reports.js';

describe('bootReportsOf: the boots in a boot step result', () => {
  it('reads a list of boot records, naming the serial log and the record file', () => {
    const rec = { arch: 'x86_64', variant: 'seabios', verdict: 'FAIL', reason: 'boot-panic', stage: 'kernel', stage_ms: { firmware: 10 }, message: 'panic', accel: 'kvm', duration_ms: 900, serial_log: 'seabios.serial.log', machine: 'q35' };
    expect(bootReportsOf([rec])).toEqual([
      { arch: 'x86_64', variant: 'seabios', verdict: 'FAIL', reason: 'boot-panic', stage: 'kernel', stage_ms: { firmware: 10 }, message: 'panic', accel: 'kvm', duration_ms: 900, serial_log: 'seabios.serial.log', record: 'seabios.json' },
    ]);
    expect(bootReportsOf([{ arch: 'aarch64', variant: 'uefi', verdict: 'PASS', serial_log: 'uefi.serial.log' }])).toEqual([
      { arch: 'aarch64', variant: 'uefi', verdict: 'PASS', reason: null, stage: null, stage_ms: null, message: '', accel: null, duration_ms: null, serial_log: 'uefi.serial.log', record: 'uefi.json' },
    ]);
  });

  it('anything else reports no boot', () => {
    expect(bootReportsOf(undefined)).toEqual([]);
    expect(bootReportsOf([])).toEqual([]);
    expect(bootReportsOf({ kernelRelease: '6.1' })).toEqual([]);
    expect(bootReportsOf([{ variant: 'seabios', check: 'lockdown', result: 'pass' }])).toEqual([]);
  });
});
