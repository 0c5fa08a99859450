/**
 * `npm run docs:commands`: writes docs/commands.md from the command table, and the
 * README's command table between <!-- commands:begin --> and <!-- commands:end -->
 * (left alone when the README has no markers).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRootDir } from '../lib/repo-root.js';
import { commandsFile, withReadmeTable } from './command-docs.js';

const root = repoRootDir();
const docs = join(root, 'docs', 'commands.md');
await mkdir(join(root, 'docs'), { recursive: true });
await writeFile(docs, commandsFile(await readFile(docs, 'utf8').catch(() => null)));
process.stdout.write(`wrote ${docs}\n`);
const readmeFile = join(root, 'README.md');
const readme = withReadmeTable(await readFile(readmeFile, 'utf8'));
if (readme === null) process.stdout.write(`${readmeFile}: no <!-- commands:begin --> / <!-- commands:end --> markers: left alone\n`);
else {
  await writeFile(readmeFile, readme);
  process.stdout.write(`refreshed the command table in ${readmeFile}\n`);
}
