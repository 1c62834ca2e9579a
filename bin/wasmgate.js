#!/usr/bin/env node
// The `wasmgate` command: runs the compiled CLI (built by `npm ci` through the prepare script).
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(
    `wasmgate needs Node 22 or newer (this is ${process.version}); run it through npm scripts or npx, which use the Node 24 in node_modules\n`,
  );
  process.exit(1);
}
// V8 flags first, before the rest of the program is loaded (dist/cli.js imports it too).
await import('../dist/server/v8-tuning.js');
const { main } = await import('../dist/cli.js');

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`wasmgate: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
