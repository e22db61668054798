// The CPU every benchmark names beside its figures (src/util/cpu.ts, shared with `lmforge study`).
export { cpuName } from '../src/util/cpu.js';
