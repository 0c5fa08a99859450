/**
 * The command reference generated from the table in bin/cli.ts: docs/commands.md
 * and the README's command table between its markers. test/cli.test.ts fails when
 * either differs from what the table generates; `npm run docs:commands` refreshes them.
 */
import { allOptions, type CommandSpec } from './args.js';
import { COMMANDS, synopsis } from './cli.js';
import { EXIT_MEANINGS } from './exit.js';

export const README_BEGIN = '<!-- commands:begin -->';
export const README_END = '<!-- commands:end -->';
/** Below this line docs/commands.md is written by hand (the start-up figures) and kept as it is. */
export const HAND_WRITTEN = '<!-- hand-written below: `npm run docs:commands` keeps what follows -->';

const cell = (s: string): string => s.replace(/\|/g, '\\|');
const flagOf = (o: { name: string; short?: string; value?: string }) => `${o.short ? `-${o.short}, ` : ''}--${o.name}${o.value ? ` ${o.value}` : ''}`;

/** The rows `| \`clawos-build NAME\` | summary |` of the README. */
export function readmeTable(table: readonly CommandSpec[] = COMMANDS): string {
  return ['| command | what it does |', '|---|---|', ...table.map((c) => `| \`clawos-build ${cell(c.name)}\` | ${cell(c.summary)} |`)].join('\n');
}

/** docs/commands.md above the hand-written part. */
export function commandsMarkdown(table: readonly CommandSpec[] = COMMANDS): string {
  const shared = [...new Set(table.flatMap((c) => c.options.filter((g) => !g.owner).flatMap((g) => g.options)))];
  const out = [
    '# clawos-build commands',
    '',
    '<!-- generated from the command table in bin/cli.ts by `npm run docs:commands`: edit the table, not this part -->',
    '',
    readmeTable(table),
    '',
    '## Options several commands share',
    '',
    '| option | meaning |',
    '|---|---|',
    ...shared.map((o) => `| \`${cell(flagOf(o))}\` | ${cell(o.help)} |`),
    '| `-h, --help` | usage; after a command, that command\'s options |',
    '| `--version` | print the version |',
    '',
    '## Exit codes',
    '',
    '| code | meaning |',
    '|---|---|',
    ...EXIT_MEANINGS.map(([code, m]) => `| ${code} | ${cell(m)} |`),
  ];
  for (const c of table) {
    out.push('', `## clawos-build ${c.name}`, '', c.summary, ...(c.details?.length ? ['', ...c.details.map((d) => `${d}  `)] : []), '', '```', `clawos-build ${synopsis(c, true)}`, '```');
    const opts = allOptions(c);
    if (opts.length) out.push('', '| option | meaning |', '|---|---|', ...opts.map((o) => `| \`${cell(flagOf(o))}\` | ${cell(o.help)} |`));
  }
  return out.join('\n') + '\n';
}

/** The whole of docs/commands.md: the generated part, then whatever was written by hand below the marker. */
export function commandsFile(existing: string | null, table: readonly CommandSpec[] = COMMANDS): string {
  const at = existing?.indexOf(HAND_WRITTEN) ?? -1;
  const tail = at >= 0 ? existing!.slice(at) : `${HAND_WRITTEN}\n`;
  return `${commandsMarkdown(table)}\n${tail}`;
}

/** The README with its command table refreshed, or null when it has no markers. */
export function withReadmeTable(readme: string, table: readonly CommandSpec[] = COMMANDS): string | null {
  const b = readme.indexOf(README_BEGIN);
  const e = readme.indexOf(README_END);
  if (b < 0 || e < b) return null;
  return `${readme.slice(0, b + README_BEGIN.length)}\n${readmeTable(table)}\n${readme.slice(e)}`;
}
