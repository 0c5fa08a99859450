/**
 * Load every task spec of tasks/ and report every problem at once, each as
 * file:line:col: unknown/missing fields, malformed ids, duplicates, dangling
 * or later-phase dependencies, cycles (with the whole path), output clashes,
 * outputs outside the agent's directory, and YAML that does not parse.
 */
import { readFile, readdir, access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Diagnostic } from '../../lib/yaml-source.js';
import { checkData, checkDataText, loadData, schemaAt, RELEASE_FILE, RELEASE_SCHEMA } from '../../lib/data.js';
import { sha256Hex } from '../../lib/hash.js';
import { stepParamsDiagnostics, type StepSchemas } from './step-params.js';
import { PHASES, type AgentSpec, type LoadedTask, type TaskSpec } from './task-spec.js';

export interface Catalog {
  tasks: Map<string, LoadedTask>;
  agents: Map<string, AgentSpec>;
  components: Map<string, { description: string; needs: string }>;
}

export interface LoadOptions {
  repoRoot: string;
  /** Directory of task specs, default <repoRoot>/tasks. */
  tasksDir?: string;
  /** Names a `uses:` may take. */
  stepNames: ReadonlySet<string>;
  /** The steps, for their parameter schemas: each task's `with:` is checked against its step's. */
  steps?: StepSchemas;
}

export interface LoadResult {
  catalog: Catalog;
  diagnostics: Diagnostic[];
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

type Components = Map<string, { description: string; needs: string }>;

const AGENTS = ['specs/agents.yaml', 'specs/schemas/agents.schema.json'] as const;
const COMPONENTS = ['specs/components.yaml', 'specs/schemas/components.schema.json'] as const;
/** Read by the gates (pipeline/run/gates.ts); checked here so `validate` reports it. */
export const GATES = ['specs/gates.yaml', 'specs/schemas/gates.schema.json'] as const;

export async function loadAgents(repoRoot: string): Promise<Map<string, AgentSpec>> {
  const doc = await loadData<{ agents: AgentSpec[] }>(repoRoot, ...AGENTS);
  return new Map(doc.agents.map((a) => [a.id, a]));
}

export async function loadComponents(repoRoot: string): Promise<Components> {
  const doc = await loadData<{ components: Record<string, { description: string; needs: string }> }>(repoRoot, ...COMPONENTS);
  return new Map(Object.entries(doc.components));
}

export async function loadTasks(opts: LoadOptions): Promise<LoadResult> {
  const { repoRoot } = opts;
  const tasksDir = opts.tasksDir ?? join(repoRoot, 'tasks');
  const schema = schemaAt(join(repoRoot, 'specs/schemas/task.schema.json'));
  const agentsDoc = await checkData<{ agents: AgentSpec[] }>(repoRoot, ...AGENTS);
  const componentsDoc = await checkData<{ components: Record<string, { description: string; needs: string }> }>(repoRoot, ...COMPONENTS);
  // The other data files every command relies on: their problems are the catalog's.
  const diagnostics: Diagnostic[] = [
    ...agentsDoc.diagnostics,
    ...componentsDoc.diagnostics,
    ...(await checkData(repoRoot, ...GATES)).diagnostics,
    ...(await checkData(repoRoot, RELEASE_FILE, RELEASE_SCHEMA)).diagnostics,
  ];
  const agents = new Map(agentsDoc.diagnostics.length ? [] : agentsDoc.value.agents.map((a) => [a.id, a]));
  const components: Components = new Map(componentsDoc.diagnostics.length ? [] : Object.entries(componentsDoc.value.components));
  const tasks = new Map<string, LoadedTask>();
  const relDir = tasksDir.startsWith(repoRoot + '/') ? tasksDir.slice(repoRoot.length + 1) : tasksDir;

  const archNames = (await readdir(join(repoRoot, 'specs', 'arch'))).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
  const files = (await readdir(tasksDir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  for (const f of files) {
    const rel = `${relDir}/${f}`;
    const text = await readFile(join(tasksDir, f), 'utf8');
    const { src, diagnostics: diags } = checkDataText<TaskSpec>(text, rel, schema);
    if (diags.length) {
      diagnostics.push(...diags);
      continue;
    }
    const spec = src.value as TaskSpec;
    const loaded: LoadedTask = { spec, file: rel, sha256: sha256Hex(text), locate: src.locate };
    const prev = tasks.get(spec.task_id);
    if (prev) {
      diagnostics.push({ ...src.locate(['task_id']), message: `duplicate task_id ${spec.task_id}: already defined in ${prev.file}` });
      continue;
    }
    if (f.replace(/\.ya?ml$/, '') !== spec.task_id) {
      diagnostics.push({ ...src.locate(['task_id']), message: `task_id ${spec.task_id} does not match the file name ${f}` });
    }
    tasks.set(spec.task_id, loaded);
  }

  for (const t of tasks.values()) {
    const s = t.spec;
    const actions = (['run', 'uses', 'component', 'pending'] as const).filter((k) => s[k] !== undefined);
    if (actions.length !== 1) {
      diagnostics.push({
        ...t.locate(actions.length ? [actions[1] ?? actions[0]!] : ['task_id'], true),
        message: actions.length
          ? `a task has exactly one action (run, uses, component or pending); this one has ${actions.join(' and ')}`
          : 'a task needs an action: run, uses, component or pending',
      });
    }
    if (s.with !== undefined && !s.uses) diagnostics.push({ ...t.locate(['with'], true), message: '`with:` parameters go with `uses:`' });
    if (!agentsDoc.diagnostics.length && !agents.has(s.agent)) {
      diagnostics.push({ ...t.locate(['agent']), message: `unknown agent "${s.agent}" (known: ${[...agents.keys()].join(', ')})` });
    }
    for (const [name, b] of Object.entries(s.backends ?? {})) {
      if (!s.uses) diagnostics.push({ ...t.locate(['backends'], true), message: '`backends:` alternatives go with `uses:` (the default backend)' });
      else if (b.component !== undefined) {
        // A component alternative (the eBPF programs built by Aya instead of B-08's C) has no step parameters.
        if (b.uses !== undefined || b.with !== undefined) diagnostics.push({ ...t.locate(['backends', name], true), message: `backend ${name}: a component alternative has no uses: or with:` });
        if (!componentsDoc.diagnostics.length && !components.has(b.component)) {
          diagnostics.push({ ...t.locate(['backends', name, 'component']), message: `unknown component "${b.component}" (declared in specs/components.yaml: ${[...components.keys()].join(', ')})` });
        }
      } else if (b.uses === undefined) {
        diagnostics.push({ ...t.locate(['backends', name], true), message: `backend ${name} needs uses: (a built-in step) or component:` });
      } else if (!opts.stepNames.has(b.uses)) {
        diagnostics.push({ ...t.locate(['backends', name, 'uses']), message: `unknown built-in step "${b.uses}" (known: ${[...opts.stepNames].sort().join(', ')})` });
      }
    }
    if (opts.steps) diagnostics.push(...stepParamsDiagnostics(t, opts.steps));
    if (s.uses && !opts.stepNames.has(s.uses)) {
      diagnostics.push({ ...t.locate(['uses']), message: `unknown built-in step "${s.uses}" (known: ${[...opts.stepNames].sort().join(', ')})` });
    }
    if (s.component && !componentsDoc.diagnostics.length && !components.has(s.component)) {
      diagnostics.push({ ...t.locate(['component']), message: `unknown component "${s.component}" (declared in specs/components.yaml: ${[...components.keys()].join(', ')})` });
    }
    s.depends_on.forEach((d, i) => {
      const dep = tasks.get(d);
      if (!dep) {
        diagnostics.push({ ...t.locate(['depends_on', i]), message: `depends_on names no task: ${d}` });
      } else if (PHASES.indexOf(dep.spec.phase) > PHASES.indexOf(s.phase)) {
        diagnostics.push({
          ...t.locate(['depends_on', i]),
          message: `${s.task_id} (phase ${s.phase}) depends on ${d} of the later phase ${dep.spec.phase}`,
        });
      } else if (dep.spec.task_id === s.task_id) {
        diagnostics.push({ ...t.locate(['depends_on', i]), message: `${s.task_id} depends on itself` });
      }
    });
    s.outputs.forEach((o, i) => {
      if (o.startsWith('/') || o.split('/').includes('..')) {
        diagnostics.push({ ...t.locate(['outputs', i]), message: `output ${o} must be a relative path inside the build dir` });
      } else if (!o.startsWith(`${s.agent}/`)) {
        diagnostics.push({
          ...t.locate(['outputs', i]),
          message: `output ${o} lies outside the directory of agent ${s.agent} (${s.agent}/): each agent writes only its own directory (RULE-001)`,
        });
      }
    });
    for (const [i, p] of s.inputs.entries()) {
      const expanded = p.includes('{arch}') ? archNames.map((a) => p.replaceAll('{arch}', a)) : [p];
      for (const e of expanded) {
        if (!(await exists(join(repoRoot, e)))) diagnostics.push({ ...t.locate(['inputs', i]), message: `input ${e} does not exist in the repository` });
      }
    }
    for (const [i, p] of s.frozen_spec_deps.entries()) {
      if (!(await exists(join(repoRoot, p)))) diagnostics.push({ ...t.locate(['frozen_spec_deps', i]), message: `frozen spec ${p} does not exist` });
    }
  }

  // Two tasks claiming the same output, or one claiming a path inside another's.
  const claims: { path: string; task: LoadedTask; index: number }[] = [];
  for (const t of tasks.values()) t.spec.outputs.forEach((o, index) => claims.push({ path: o.replace(/\/+$/, ''), task: t, index }));
  claims.sort((a, b) => a.task.spec.task_id.localeCompare(b.task.spec.task_id) || a.index - b.index);
  for (let i = 0; i < claims.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = claims[j]!;
      const b = claims[i]!;
      if (a.task === b.task) continue;
      if (a.path === b.path || b.path.startsWith(a.path + '/') || a.path.startsWith(b.path + '/')) {
        diagnostics.push({
          ...b.task.locate(['outputs', b.index]),
          message: `output ${b.path} is also claimed by ${a.task.spec.task_id} (${a.task.file}: ${a.path})`,
        });
      }
    }
  }

  diagnostics.push(...findCycles(tasks));
  diagnostics.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
  return { catalog: { tasks, agents, components }, diagnostics };
}

/** Every elementary cycle found by DFS, reported once, with its whole path. */
function findCycles(tasks: Map<string, LoadedTask>): Diagnostic[] {
  const out: Diagnostic[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const reported = new Set<string>();
  const visit = (id: string) => {
    state.set(id, 'visiting');
    stack.push(id);
    const t = tasks.get(id)!;
    t.spec.depends_on.forEach((d, i) => {
      if (!tasks.has(d)) return;
      const st = state.get(d);
      if (st === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(d)), d];
        const key = [...cycle.slice(0, -1)].sort().join(',');
        if (!reported.has(key)) {
          reported.add(key);
          out.push({ ...t.locate(['depends_on', i]), message: `dependency cycle: ${cycle.join(' -> ')}` });
        }
      } else if (!st) {
        visit(d);
      }
    });
    stack.pop();
    state.set(id, 'done');
  };
  for (const id of [...tasks.keys()].sort()) if (!state.has(id)) visit(id);
  return out;
}
