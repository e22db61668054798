// Child process for checkpoint.test.ts: resumes from the newest complete checkpoint in argv[2] (or starts at 0)
// and writes ~12 MB checkpoints in a tight loop, printing "saved <step>" after each, until killed.
import { findLatestComplete, saveCheckpoint } from '../../src/train/checkpoint.js';
import { checkpointContents } from './ckpt-fixture.js';

const runDir = process.argv[2];
if (!runDir) throw new Error('usage: ckpt-writer-child <runDir>');
const latest = findLatestComplete(runDir);
for (let step = latest ? latest.step + 1 : 0; ; step++) {
  saveCheckpoint(runDir, checkpointContents(step, 1 << 20), { keepLast: 3 });
  process.stdout.write(`saved ${step}\n`);
}
