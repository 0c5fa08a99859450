/**
 * The SBOMs a release bundle attests: one CycloneDX and one SPDX document per
 * arch image, made from the run's recorded outputs (found by the bundle
 * config's iso/kernel/initramfs globs, so no task id is named here), the input
 * lock and the host package versions the run recorded. Written under
 * <build>/sbom/<arch>/, put into the content store, returned as subjects.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { sha256Hex } from '../../lib/hash.js';
import { globToRegExp, type BundleConfig } from '../../vault/release-bundle.js';
import { storePut, type BundleArtifact } from '../../vault/bundle.js';
import type { InputLock } from '../catalog/input-lock.js';
import { seccompOf } from '../security/seccomp-arch.js';
import { cycloneDx, imageComponents, spdx, type ImageFacts } from '../inputs/sbom.js';
import type { RunContext } from './context.js';

/** A UUID (RFC 4122 layout, version 5 bits) derived from content, so the same image gives the same document. */
function contentUuid(seed: string): string {
  const h = sha256Hex(seed);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export async function writeSbomSubjects(rc: RunContext, config: BundleConfig, lock: InputLock, release: string, sourcePackage: string | undefined): Promise<BundleArtifact[]> {
  // Every recorded PASS output, with the kind the bundle config gives its path.
  const rules = config.subjects.map((s) => ({ kind: s.kind, re: globToRegExp(s.glob) }));
  const recorded: { path: string; sha256: string; kind: string; data: unknown }[] = [];
  for (const rec of Object.values(rc.state.data.instances)) {
    if (rec.status !== 'PASS') continue;
    for (const [path, o] of Object.entries(rec.outputs)) {
      const kind = rules.find((r) => r.re.test(path))?.kind;
      if (kind) recorded.push({ path, sha256: o.sha256, kind, data: rec.data });
    }
  }
  const out: BundleArtifact[] = [];
  const timestamp = new Date(rc.sourceDateEpoch * 1000).toISOString();
  for (const arch of [...rc.arches.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const mine = (kind: string) => recorded.filter((r) => r.kind === kind && r.path.split('/').includes(arch.name));
    const iso = mine('iso')[0];
    const kernel = mine('kernel')[0];
    const initramfs = mine('initramfs')[0];
    if (!iso || !kernel || !initramfs) continue;
    const configRec = Object.values(rc.state.data.instances).flatMap((r) => Object.entries(r.outputs)).find(([p]) => p === join(dirname(kernel.path), 'config'));
    const kernelRelease = (kernel.data as { kernelRelease?: unknown } | undefined)?.kernelRelease;
    // Host packages whose bits end up in the image: the loader's static libc (the EFI stub and GRUB come from locked debs).
    const host = [...(seccompOf(arch)?.loader_packages ?? []).filter((p) => p.startsWith('libc'))];
    await rc.tools.load(host);
    const facts: ImageFacts = {
      arch: arch.name,
      debianArch: arch.debian_arch,
      release,
      image: { path: iso.path, sha256: iso.sha256 },
      kernel: { release: typeof kernelRelease === 'string' ? kernelRelease : 'unknown', imageSha256: kernel.sha256, configSha256: configRec?.[1].sha256 ?? 'unknown', sourcePackage: sourcePackage ?? '' },
      initramfsSha256: initramfs.sha256,
      lockedPackages: arch.debs,
      hostPackages: Object.fromEntries(host.map((p) => [p, rc.tools.get(p)])),
      timestamp,
    };
    const components = imageComponents(facts, lock);
    const serial = contentUuid(`${iso.sha256} ${release}`);
    for (const [name, doc] of [
      [`clawos-${arch.name}.cdx.json`, cycloneDx(facts, components, serial)],
      [`clawos-${arch.name}.spdx.json`, spdx(facts, components, serial)],
    ] as const) {
      const rel = `sbom/${arch.name}/${name}`;
      const abs = join(rc.buildDir, rel);
      await mkdir(dirname(abs), { recursive: true });
      await writeFile(abs, JSON.stringify(doc, null, 2) + '\n');
      out.push({ path: rel, sha256: await storePut(rc.buildDir, abs), kind: 'sbom' });
    }
  }
  return out;
}
