/** clawos-build.config.yaml: local settings that are not part of the repo's specs (component sources). */
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve, dirname } from 'node:path';
import { UserError } from '../../lib/errors.js';
import { loadYamlDocument } from '../../lib/data.js';
import { join } from 'node:path';

export interface ComponentConfig {
  source: { path: string; sha256?: string } | { url: string; sha256: string };
  build: string;
  outputs: string[];
}

export interface LocalConfig {
  /** Absolute path of the file it came from, or null. */
  file: string | null;
  components: Record<string, ComponentConfig>;
  /** Names of environment variables whose values are secrets: redacted from every log, event, record and report. */
  secrets: { env: string[] };
  /** The shared task cache (--remote-cache overrides url and readonly); header_env names a variable holding one "Name: value" header. */
  remote_cache?: { url: string; readonly?: boolean; header_env?: string };
  /** The shared compiler cache (ccache; --no-compiler-cache and --compiler-cache-remote override): pipeline/ccache/compiler-cache.ts. */
  compiler_cache?: { enabled?: boolean; dir?: string; max_size?: string; remote?: string; remote_readonly?: boolean };
  /** Kernel compiles through the local iceccd's icecream cluster (--icecream turns it on too); jobs: make -j while they do. */
  icecream?: { jobs?: number };
}

export async function loadLocalConfig(repoRoot: string, explicit: string | undefined): Promise<LocalConfig> {
  const file = explicit ? resolve(explicit) : join(repoRoot, 'clawos-build.config.yaml');
  try {
    await readFile(file);
  } catch {
    if (explicit) throw new UserError(`config file ${explicit} does not exist`);
    return { file: null, components: {}, secrets: { env: [] } };
  }
  const schema = JSON.parse(await readFile(join(repoRoot, 'specs/schemas/config.schema.json'), 'utf8')) as object;
  const doc = (await loadYamlDocument(file, explicit ?? 'clawos-build.config.yaml', schema)) as {
    components?: Record<string, ComponentConfig>;
    secrets?: { env?: string[] };
    remote_cache?: { url: string; readonly?: boolean; header_env?: string };
    compiler_cache?: LocalConfig['compiler_cache'];
    icecream?: { jobs?: number };
  };
  const components = doc.components ?? {};
  // Relative source paths are relative to the config file.
  for (const c of Object.values(components)) {
    if ('path' in c.source && !isAbsolute(c.source.path)) c.source.path = resolve(dirname(file), c.source.path);
  }
  // A relative cache dir is relative to the config file, as component paths are.
  const cc = doc.compiler_cache;
  if (cc?.dir && !isAbsolute(cc.dir)) cc.dir = resolve(dirname(file), cc.dir);
  return {
    file,
    components,
    secrets: { env: doc.secrets?.env ?? [] },
    ...(doc.remote_cache ? { remote_cache: doc.remote_cache } : {}),
    ...(cc ? { compiler_cache: cc } : {}),
    ...(doc.icecream ? { icecream: doc.icecream } : {}),
  };
}
