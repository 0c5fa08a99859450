#!/usr/bin/env node
// Entry point. The TypeScript sources compile to dist/ (npm install runs `prepare`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/bin/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write('clawos-build: dist/ is missing: run `npm install` (or `npm run build`) in the repository first\n');
  process.exit(4);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
