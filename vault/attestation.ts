/**
 * The provenance of a run as an in-toto Statement v1 with a SLSA Provenance v1
 * predicate. Pure functions over plain data: the caller (scheduler/CLI) collects
 * the facts; this module only shapes them, so the shape is testable without a build.
 */
import { canonicalBytes } from './jcs.js';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
export const BUILD_TYPE = 'https://clawos.dev/clawos-build/buildtypes/iso/v1';

export type SubjectKind = 'iso' | 'uki' | 'kernel' | 'initramfs' | 'ebpf' | 'report' | 'sbom';

export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest: Record<string, string>;
  annotations?: Record<string, unknown>;
}

export interface Statement {
  _type: typeof STATEMENT_TYPE;
  subject: (ResourceDescriptor & { name: string })[];
  predicateType: typeof SLSA_PROVENANCE_V1;
  predicate: {
    buildDefinition: {
      buildType: string;
      externalParameters: Record<string, unknown>;
      internalParameters?: Record<string, unknown>;
      resolvedDependencies: ResourceDescriptor[];
    };
    runDetails: {
      builder: { id: string; version?: Record<string, string> };
      metadata: { invocationId: string; startedOn: string; finishedOn: string };
      byproducts?: ResourceDescriptor[];
    };
  };
}

export interface ProvenanceInput {
  /** Bundle paths (e.g. artifacts/x86_64/clawos-x86_64.iso) with their sha256 (hex). */
  subjects: { name: string; sha256: string; kind: SubjectKind }[];
  kernelSource: { name: string; sha256: string; uri?: string; version?: string };
  debianPackages: { name: string; version: string; arch: string; sha256: string }[];
  /** The input lock the build fetched by (inputs.lock.yaml), carried in the bundle under this name. */
  inputLock?: { name: string; sha256: string };
  /** Every frozen file as the build read it (sha256 of the bytes read); `frozen_sha256`: the record's hash it was checked against. */
  frozenSpecs: { path: string; sha256: string; version: string; spec_id?: string; frozen_sha256?: string }[];
  builderId: string;
  builderVersion?: Record<string, string>;
  /** = the run_id. */
  runId: string;
  release: string;
  startedOn: Date | string;
  finishedOn: Date | string;
  /** What the user asked for: arches, phases, SOURCE_DATE_EPOCH … */
  externalParameters?: Record<string, unknown>;
  /** The event log, recorded as a byproduct so the signed statement pins the log root too. */
  eventLog?: { name: string; sha256: string; count: number; logRootB64u: string; headEventHashB64u: string };
}

function iso(t: Date | string): string {
  return typeof t === 'string' ? new Date(t).toISOString() : t.toISOString();
}

function byName<T extends { name?: string; uri?: string }>(a: T, b: T): number {
  const ka = a.name ?? a.uri ?? '';
  const kb = b.name ?? b.uri ?? '';
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Package URL of a Debian package (purl spec, type "deb"). */
export function debPurl(p: { name: string; version: string; arch: string }): string {
  return `pkg:deb/debian/${encodeURIComponent(p.name)}@${encodeURIComponent(p.version)}?arch=${encodeURIComponent(p.arch)}`;
}

export function buildStatement(input: ProvenanceInput): Statement {
  const deps: ResourceDescriptor[] = [
    {
      name: input.kernelSource.name,
      ...(input.kernelSource.uri ? { uri: input.kernelSource.uri } : {}),
      digest: { sha256: input.kernelSource.sha256 },
      annotations: { kind: 'kernel-source', ...(input.kernelSource.version ? { version: input.kernelSource.version } : {}) },
    },
    ...(input.inputLock ? [{ name: input.inputLock.name, digest: { sha256: input.inputLock.sha256 }, annotations: { kind: 'input-lock' } }] : []),
    ...input.debianPackages
      .map((p) => ({
        name: `${p.name}_${p.version}_${p.arch}.deb`,
        uri: debPurl(p),
        digest: { sha256: p.sha256 },
        annotations: { kind: 'debian-package', package: p.name, version: p.version, arch: p.arch },
      }))
      .sort(byName),
    ...input.frozenSpecs
      .map((s) => ({
        name: s.path,
        digest: { sha256: s.sha256 },
        annotations: { kind: 'frozen-spec', version: s.version, ...(s.spec_id ? { spec_id: s.spec_id } : {}), ...(s.frozen_sha256 ? { frozen_sha256: s.frozen_sha256 } : {}) },
      }))
      .sort(byName),
  ];
  const st: Statement = {
    _type: STATEMENT_TYPE,
    subject: input.subjects.map((s) => ({ name: s.name, digest: { sha256: s.sha256 }, annotations: { kind: s.kind } })).sort(byName),
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters: { release: input.release, ...(input.externalParameters ?? {}) },
        resolvedDependencies: deps,
      },
      runDetails: {
        builder: { id: input.builderId, ...(input.builderVersion ? { version: input.builderVersion } : {}) },
        metadata: { invocationId: input.runId, startedOn: iso(input.startedOn), finishedOn: iso(input.finishedOn) },
      },
    },
  };
  if (input.eventLog) {
    st.predicate.runDetails.byproducts = [
      {
        name: input.eventLog.name,
        digest: { sha256: input.eventLog.sha256 },
        annotations: { kind: 'event-log', count: input.eventLog.count, log_root_b64u: input.eventLog.logRootB64u, head_event_hash_b64u: input.eventLog.headEventHashB64u },
      },
    ];
  }
  return st;
}

export function statementBytes(st: Statement): Buffer {
  return canonicalBytes(st);
}
