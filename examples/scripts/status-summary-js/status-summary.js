// An example site script of the `status-script` world, in JavaScript.
//
// run(ids) reads the status of each operation id it is given and returns
// one line per id followed by the count of ids by status, e.g.
// "2 ids: 1 delivered, 1 unknown". It fails (throws, which the component
// model turns into `err`) when given no ids, or when an id is malformed.
//
// The lines are the Rust example's stdout; this script returns them instead,
// because it is built without componentize-js's stdio (see build.mjs), and
// console.log then prints nothing.
//
// Build it with `make scripts`, which runs `node build.mjs`; run it with
// `tracking script run target/scripts/status-summary-js.wasm -- ID...`.

import { getStatus } from 'scadalink:tracking/status@0.1.0';

export function run(args) {
  if (args.length === 0) {
    throw 'usage: status-summary ID... (give at least one operation id)';
  }

  const counts = new Map();
  const lines = [];
  for (const id of args) {
    const snapshot = read(id);
    lines.push(line(id, snapshot));
    const name = snapshot === undefined ? 'unknown' : snapshot.status;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }

  // Sorted by name, as the Rust example does, so both print the same.
  const parts = [...counts.keys()].sort().map((name) => `${counts.get(name)} ${name}`);
  lines.push(`${args.length} ids: ${parts.join(', ')}`);
  return lines.join('\n');
}

// The snapshot of `id`, or undefined for an unknown id. The store's `error`
// arrives as a thrown ComponentError whose payload is the WIT variant.
function read(id) {
  try {
    return getStatus(id);
  } catch (e) {
    const error = e.payload ?? e;
    if (error.tag === 'invalid-input') {
      throw `${JSON.stringify(id)}: invalid ${error.val.field}: ${error.val.rule}`;
    }
    throw `cannot read the store: ${JSON.stringify(error)}`;
  }
}

function line(id, s) {
  if (s === undefined) {
    return `${id} unknown`;
  }
  let out = `${s.id} ${s.status} retries=${s.retryCount}`;
  if (s.httpStatus !== undefined) {
    out += ` http=${s.httpStatus}`;
  }
  if (s.lastError !== undefined) {
    out += ` error=${JSON.stringify(s.lastError)}`;
  }
  return out;
}
