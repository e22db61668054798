// The core engine's suite (issue 2's bars in one run): fp32 matmul GFLOPS and fused attention forward+backward,
// each beside PyTorch. Usage: npm run bench -- core [flags passed to both suites]
import { run as runAttention } from './attention.js';
import { run as runMatmul } from './matmul.js';

export async function run(args: string[]): Promise<void> {
  console.log('== matmul ==');
  await runMatmul(args);
  console.log('\n== attention ==');
  await runAttention(args);
}
