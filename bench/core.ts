// The core engine's suite (issue 2's bars in one run): fp32 matmul GFLOPS and fused attention forward+backward,
// each beside PyTorch; each suite prints its own RESULT line, attention's last. Usage: npm run bench -- core [flags]
import { run as runAttention } from './attention.js';
import { run as runMatmul } from './matmul.js';

export async function run(args: string[]): Promise<void> {
  console.log('== matmul ==');
  await runMatmul(args);
  console.log('\n== attention ==');
  await runAttention(args);
}
