// `npm run demo`: the main job. Installs and builds on a fresh clone, then runs the demo.
import { ensureDeps, run } from './ensure-deps.mjs';

ensureDeps();
run(process.execPath, ['dist/src/cli/main.js', 'demo', ...process.argv.slice(2)]);
