/**
 * The vault manifest is read, changed and rewritten whole: concurrent tasks of a
 * run record their outputs one after another through this queue.
 */
import { recordInManifest, type ManifestEntry } from '../../vault/manifest.js';

export class ManifestQueue {
  private chain: Promise<unknown> = Promise.resolve();
  constructor(private readonly buildDir: string) {}

  record(producer: string, entries: Omit<ManifestEntry, 'producer'>[]): Promise<void> {
    const next = this.chain.then(() => recordInManifest(this.buildDir, producer, entries));
    this.chain = next.catch(() => {});
    return next.then(() => {});
  }
}
