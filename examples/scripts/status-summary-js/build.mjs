// Builds status-summary.js into a component of the `status-script` world.
//
//   node build.mjs OUT.wasm
//
// componentize-js embeds the script in its SpiderMonkey engine. Two of the
// engine's features import what the script runner refuses, so they are left
// out: `http` and `fetch-event` (fetch, wasi:http), and `stdio`, whose
// console goes through wasi:filesystem descriptors. Clocks and random stay.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { componentize } from '@bytecodealliance/componentize-js';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? 'status-summary-js.wasm');

const started = Date.now();
const { component } = await componentize({
  sourcePath: resolve(here, 'status-summary.js'),
  witPath: resolve(here, '../../../wit'),
  worldName: 'status-script',
  disableFeatures: ['http', 'fetch-event', 'stdio'],
});

await mkdir(dirname(out), { recursive: true });
await writeFile(out, component);
const size = (await readFile(out)).length;
console.log(`${out}: ${(size / 1e6).toFixed(1)} MB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
