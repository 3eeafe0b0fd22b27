// Build one JavaScript plugin into a component with the pinned ComponentizeJS.
// Usage: node componentize.mjs <source.js> <wit-dir-or-file> <world> <out.wasm>
// `warden plugin build` runs it; the arguments are paths, never shell text.

import { writeFile } from 'node:fs/promises';
import { componentize } from '@bytecodealliance/componentize-js';

const [source, wit, world, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node componentize.mjs <source.js> <wit> <world> <out.wasm>');
  process.exit(2);
}

const { component } = await componentize({
  sourcePath: source,
  witPath: wit,
  worldName: world,
  // The runner links WASI p2 cli, io, clocks, random and filesystem/sockets (granting nothing),
  // but not wasi:http: fetch() and the fetch event would import it and could not instantiate.
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
