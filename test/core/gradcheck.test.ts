// Every op's analytic gradient against central finite differences, in float64 on the reference backend.
import { test } from 'node:test';
import { opCases } from './op-cases.js';
import { assertClose, numericGrads, runCase } from './harness.js';

for (const c of opCases) {
  test(`gradient of ${c.name} matches finite differences`, () => {
    const analytic = runCase(c, 'reference', 'float64');
    const numeric = numericGrads(c);
    numeric.forEach((g, i) => assertClose(analytic.grads[i]!, g, 1e-5, 1e-7, `${c.name} input ${i}`));
  });
}
