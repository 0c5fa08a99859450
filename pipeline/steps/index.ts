/** The built-in steps a task spec may name with `uses:`. */
import type { Step } from '../catalog/step.js';
import { apparmorCompileStep } from './apparmor-compile.js';
import { apparmorFlowStep } from './apparmor-flow.js';
import { buildrootStep } from './buildroot.js';
import { ebpfBuildStep } from './ebpf-build.js';
import { guestCheckStep } from './guest-check.js';
import { hwRecordsStep } from './hw-records.js';
import { isoStep } from './iso.js';
import { kconfigAssertStep } from './kconfig-assert.js';
import { kconfigAuditStep } from './kconfig-audit.js';
import { kernelBuildStep } from './kernel-build.js';
import { qemuBootStep } from './qemu-boot.js';
import { rootfsStep } from './rootfs.js';
import { seccompCompileStep } from './seccomp-compile.js';
import { securityReportStep } from './security-report.js';
import { specFreezeStep } from './spec-freeze.js';
import { stockBenchStep } from './stock-bench.js';

export function builtinSteps(): Map<string, Step> {
  const all = [specFreezeStep, kernelBuildStep, kconfigAssertStep, rootfsStep, isoStep, qemuBootStep, guestCheckStep, buildrootStep, stockBenchStep, seccompCompileStep, apparmorCompileStep, apparmorFlowStep, kconfigAuditStep, securityReportStep, hwRecordsStep, ebpfBuildStep];
  return new Map(all.map((s) => [s.name, s]));
}
