/**
 * The software bill of materials of one ClawOS image, from what the run
 * recorded and the input lock: the kernel (release, config hash, the locked
 * source package), every locked package the image carries (busybox, GRUB's
 * modules), the host packages that went into it (GRUB, the static libc of the
 * seccomp loader: version as dpkg reported it during the run, not hash-pinned),
 * and ClawOS's own parts. Written as CycloneDX 1.5 JSON and SPDX 2.3 JSON, the
 * two formats users' scanners read; the bundle attests both like any other subject.
 */
import type { InputLock, LockedDeb } from '../catalog/input-lock.js';

export interface SbomComponent {
  /** Stable id within the document. */
  ref: string;
  name: string;
  version: string;
  /** SPDX license expression. */
  license: string;
  purl?: string;
  /** sha256 of what identifies it: the .deb for a package, the file for a built part. */
  sha256?: string;
  /** Where it came from: `inputs.lock.yaml`, `host package (dpkg)`, `built by clawos-build`. */
  origin: string;
  properties?: Record<string, string>;
}

export interface ImageFacts {
  arch: string;
  debianArch: string;
  release: string;
  /** The image the SBOM describes (the ISO), build-relative path and sha256. */
  image: { path: string; sha256: string };
  kernel: { release: string; imageSha256: string; configSha256: string; sourcePackage: string };
  initramfsSha256: string;
  /** Locked packages the image carries (arch `debs:` of the arch data). */
  lockedPackages: string[];
  /** Host packages whose bits are in the image, with the version dpkg reported in this run. */
  hostPackages: Record<string, string>;
  timestamp: string;
}

/** Licenses of the Debian packages the image carries, from their debian/copyright (main license). */
/** Package URL of a Debian package (purl spec, type "deb"), as the attestation spells it. */
function debPurl(p: { name: string; version: string; arch: string }): string {
  return `pkg:deb/debian/${encodeURIComponent(p.name)}@${encodeURIComponent(p.version)}?arch=${encodeURIComponent(p.arch)}`;
}

const LICENSES: Record<string, string> = {
  'linux-source-6.1': 'GPL-2.0-only',
  'linux-source-6.12': 'GPL-2.0-only',
  'busybox-static': 'GPL-2.0-only',
  'grub-efi-arm64-bin': 'GPL-3.0-or-later',
  'grub-efi-amd64-bin': 'GPL-3.0-or-later',
  'grub-pc-bin': 'GPL-3.0-or-later',
  'libc6-dev': 'LGPL-2.1-or-later',
  'libc6-dev-arm64-cross': 'LGPL-2.1-or-later',
};

function lockedComponent(d: LockedDeb): SbomComponent {
  return {
    ref: `deb:${d.name}:${d.arch}`,
    name: d.name,
    version: d.version,
    license: LICENSES[d.name] ?? 'NOASSERTION',
    purl: debPurl(d),
    sha256: d.sha256,
    origin: 'inputs.lock.yaml',
  };
}

/** The components of one image, in a stable order. */
export function imageComponents(f: ImageFacts, lock: InputLock): SbomComponent[] {
  const src = lock.debs.find((d) => d.name === f.kernel.sourcePackage);
  const out: SbomComponent[] = [
    {
      ref: 'linux',
      name: 'linux',
      version: f.kernel.release,
      license: 'GPL-2.0-only',
      sha256: f.kernel.imageSha256,
      origin: 'built by clawos-build (A-01) from the locked kernel source',
      properties: {
        'clawos:kernel-config-sha256': f.kernel.configSha256,
        ...(src ? { 'clawos:source-package': `${src.name} ${src.version}`, 'clawos:source-package-sha256': src.sha256 } : {}),
      },
    },
  ];
  if (src) out.push(lockedComponent(src));
  for (const name of f.lockedPackages) {
    const d = lock.debs.find((x) => x.name === name && (x.arch === f.debianArch || x.arch === 'all'));
    if (d && d !== src) out.push(lockedComponent(d));
  }
  for (const [name, version] of Object.entries(f.hostPackages).sort(([a], [b]) => (a < b ? -1 : 1))) {
    out.push({
      ref: `host:${name}`,
      name,
      version,
      license: LICENSES[name] ?? 'NOASSERTION',
      purl: debPurl({ name, version, arch: f.debianArch }),
      origin: 'host package (version as dpkg reported it during the run; not hash-pinned)',
    });
  }
  out.push({
    ref: 'clawos-initramfs',
    name: 'clawos-initramfs',
    version: f.release,
    license: 'Apache-2.0',
    sha256: f.initramfsSha256,
    origin: 'built by clawos-build (A-04): init, in-guest checks, seccomp loader and filter, AppArmor profiles, canary module (GPL-2.0-only)',
  });
  return out;
}

/** CycloneDX 1.5 JSON. */
export function cycloneDx(f: ImageFacts, components: SbomComponent[], serial: string): object {
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: `urn:uuid:${serial}`,
    version: 1,
    metadata: {
      timestamp: f.timestamp,
      tools: { components: [{ type: 'application', name: 'clawos-build' }] },
      component: {
        type: 'operating-system',
        'bom-ref': 'clawos',
        name: `clawos-${f.arch}`,
        version: f.release,
        hashes: [{ alg: 'SHA-256', content: f.image.sha256 }],
        properties: [{ name: 'clawos:image', value: f.image.path }],
      },
    },
    components: components.map((c) => ({
      type: c.ref === 'linux' ? 'operating-system' : c.ref.startsWith('deb:') || c.ref.startsWith('host:') ? 'library' : 'application',
      'bom-ref': c.ref,
      name: c.name,
      version: c.version,
      licenses: [{ expression: c.license }],
      ...(c.purl ? { purl: c.purl } : {}),
      ...(c.sha256 ? { hashes: [{ alg: 'SHA-256', content: c.sha256 }] } : {}),
      properties: [{ name: 'clawos:origin', value: c.origin }, ...Object.entries(c.properties ?? {}).map(([name, value]) => ({ name, value }))],
    })),
    dependencies: [{ ref: 'clawos', dependsOn: components.map((c) => c.ref) }],
  };
}

const spdxId = (ref: string) => `SPDXRef-${ref.replace(/[^A-Za-z0-9.-]/g, '-')}`;

/** SPDX 2.3 JSON. */
export function spdx(f: ImageFacts, components: SbomComponent[], serial: string): object {
  const image = { SPDXID: 'SPDXRef-clawos', name: `clawos-${f.arch}`, versionInfo: f.release, downloadLocation: 'NOASSERTION', filesAnalyzed: false, licenseConcluded: 'NOASSERTION', licenseDeclared: 'NOASSERTION', copyrightText: 'NOASSERTION', checksums: [{ algorithm: 'SHA256', checksumValue: f.image.sha256 }], primaryPackagePurpose: 'OPERATING-SYSTEM' };
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `clawos-${f.arch}-${f.release}`,
    documentNamespace: `https://clawos.dev/spdx/clawos-${f.arch}-${f.release}-${serial}`,
    creationInfo: { created: f.timestamp, creators: ['Tool: clawos-build'] },
    documentDescribes: ['SPDXRef-clawos'],
    packages: [
      image,
      ...components.map((c) => ({
        SPDXID: spdxId(c.ref),
        name: c.name,
        versionInfo: c.version,
        downloadLocation: 'NOASSERTION',
        filesAnalyzed: false,
        licenseConcluded: 'NOASSERTION',
        licenseDeclared: c.license,
        copyrightText: 'NOASSERTION',
        comment: c.origin,
        ...(c.sha256 ? { checksums: [{ algorithm: 'SHA256', checksumValue: c.sha256 }] } : {}),
        ...(c.purl ? { externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: c.purl }] } : {}),
      })),
    ],
    relationships: components.map((c) => ({ spdxElementId: 'SPDXRef-clawos', relationshipType: 'CONTAINS', relatedSpdxElement: spdxId(c.ref) })),
  };
}
