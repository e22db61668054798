// Public API of the core layer: tensors, autograd, memory scopes, backends and every op.
export * from './tensor.js';
export * from './dtype.js';
export { Rng, hashUniform, type RngState } from './random.js';
export { tidy, keep, memory } from './storage.js';
export { backward, noGrad, isGradEnabled, requireGrad, detach, record } from './autograd.js';
export { getBackend, setBackend, withBackend, nativeAvailable, kernelsFor, setThreads, type BackendName } from './backend.js';
export { ShapeError, broadcastShapes, numel, type Shape } from './shape.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/views.js';
export * from './ops/matmul.js';
export * from './ops/nn.js';
export * from './ops/indexing.js';
export * from './ops/attention.js';
export * from './ops/sparse-attention.js';
