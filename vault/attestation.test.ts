import { describe, expect, it } from 'vitest';
import { buildStatement, debPurl, statementBytes } from './attestation.js';
import { isCanonical } from './jcs.js';
import { schemaError } from './schemas.js';

const input = {
  subjects: [
    { name: 'artifacts/x86_64/vmlinuz', sha256: '1'.repeat(64), kind: 'kernel' as const },
    { name: 'artifacts/x86_64/clawos-x86_64.iso', sha256: '2'.repeat(64), kind: 'iso' as const },
  ],
  kernelSource: { name: 'linux-source-6.1.tar.xz', sha256: 'a'.repeat(64), version: '6.1.158' },
  debianPackages: [
    { name: 'grub-efi-arm64-bin', version: '2.06-13+deb12u1', arch: 'arm64', sha256: 'c'.repeat(64) },
    { name: 'busybox-static', version: '1:1.35.0-4+b3', arch: 'amd64', sha256: 'b'.repeat(64) },
  ],
  frozenSpecs: [{ path: 'specs/p1/seccomp-whitelist.yaml', sha256: 'd'.repeat(64), version: '1.0.0', spec_id: 'P1.2' }],
  builderId: 'https://clawos.dev/clawos-build@0.1.0',
  runId: 'run-1',
  release: '0.1.0-alpha',
  startedOn: '2025-11-21T00:00:00Z',
  finishedOn: new Date('2025-11-21T00:20:00Z'),
};

describe('in-toto Statement v1 / SLSA Provenance v1', () => {
  it('has every subject, dependency and run detail, in a stable order, and matches the schema', () => {
    const st = buildStatement(input);
    expect(st._type).toBe('https://in-toto.io/Statement/v1');
    expect(st.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(st.subject).toEqual([
      { name: 'artifacts/x86_64/clawos-x86_64.iso', digest: { sha256: '2'.repeat(64) }, annotations: { kind: 'iso' } },
      { name: 'artifacts/x86_64/vmlinuz', digest: { sha256: '1'.repeat(64) }, annotations: { kind: 'kernel' } },
    ]);
    const deps = st.predicate.buildDefinition.resolvedDependencies;
    expect(deps.map((d) => d.name)).toEqual([
      'linux-source-6.1.tar.xz',
      'busybox-static_1:1.35.0-4+b3_amd64.deb',
      'grub-efi-arm64-bin_2.06-13+deb12u1_arm64.deb',
      'specs/p1/seccomp-whitelist.yaml',
    ]);
    expect(deps[1]).toEqual({
      name: 'busybox-static_1:1.35.0-4+b3_amd64.deb',
      uri: 'pkg:deb/debian/busybox-static@1%3A1.35.0-4%2Bb3?arch=amd64',
      digest: { sha256: 'b'.repeat(64) },
      annotations: { kind: 'debian-package', package: 'busybox-static', version: '1:1.35.0-4+b3', arch: 'amd64' },
    });
    expect(deps[3]!.annotations).toEqual({ kind: 'frozen-spec', version: '1.0.0', spec_id: 'P1.2' });
    expect(st.predicate.runDetails).toEqual({
      builder: { id: 'https://clawos.dev/clawos-build@0.1.0' },
      metadata: { invocationId: 'run-1', startedOn: '2025-11-21T00:00:00.000Z', finishedOn: '2025-11-21T00:20:00.000Z' },
    });
    expect(schemaError('statement', st)).toBeUndefined();
    expect(isCanonical(statementBytes(st))).toBe(true);
    expect(statementBytes(buildStatement({ ...input, subjects: [...input.subjects].reverse() })).equals(statementBytes(st))).toBe(true);
  });

  it('writes Debian packages as purls', () => {
    expect(debPurl({ name: 'linux-source-6.1', version: '6.1.158-1', arch: 'all' })).toBe('pkg:deb/debian/linux-source-6.1@6.1.158-1?arch=all');
  });
});
