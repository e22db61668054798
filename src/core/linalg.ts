// Dense float64 linear algebra on row-major arrays, for work done once on trained weights (not in a training step):
// the symmetric eigendecomposition by cyclic Jacobi rotations and the thin SVD built on it. Not a tensor op (no
// autograd, no native kernel); low-rank factorization (nn/low-rank.ts) is its user.

/** A = U·diag(S)·Vᵀ with k = min(m, n): U (m, k) and V (n, k) row-major with orthonormal columns, S descending ≥ 0. */
export interface SVD {
  m: number;
  n: number;
  k: number;
  U: Float64Array;
  S: Float64Array;
  V: Float64Array;
}

export interface EigenOptions {
  /** Stop after this many sweeps even if not converged (each sweep visits every pair once). */
  maxSweeps?: number;
}

/**
 * Eigenvalues and eigenvectors of a symmetric (n, n) matrix by cyclic Jacobi: each rotation J in the (p, q) plane
 * zeroes a_pq (A ← JᵀAJ, V ← VJ) with t = tan φ the smaller root of t² + 2θt − 1 = 0, θ = (a_qq − a_pp) / 2a_pq,
 * which keeps the rotation angle ≤ π/4 (Rutishauser). Off-diagonal mass falls quadratically once small. A rotation
 * is skipped when a_pq is below double rounding of both diagonal entries, so small eigenvalues keep their relative
 * accuracy. Returns values in descending order, vectors as the columns of a row-major (n, n) array.
 */
export function symmetricEigen(a: ArrayLike<number>, n: number, options: EigenOptions = {}): { values: Float64Array; vectors: Float64Array } {
  if (a.length !== n * n) throw new RangeError(`symmetricEigen: expected ${n}×${n} = ${n * n} values, got ${a.length}`);
  const A = Float64Array.from(a);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const d = Math.abs(A[i * n + j]! - A[j * n + i]!);
      if (!(d <= 1e-12 * (Math.abs(A[i * n + j]!) + Math.abs(A[j * n + i]!)) + 1e-300)) throw new RangeError(`symmetricEigen: the matrix is not symmetric at (${i}, ${j})`);
    }
  }
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  const maxSweeps = options.maxSweeps ?? 60;
  const EPS = 2.220446049250313e-16;
  // An absolute floor far below anything that moves an eigenvalue (a_pq² / gap), so zero eigenvalues converge too.
  let frob = 0;
  for (let i = 0; i < n * n; i++) frob += A[i]! * A[i]!;
  const floor = EPS * EPS * Math.sqrt(frob);
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q]!;
        const app = A[p * n + p]!;
        const aqq = A[q * n + q]!;
        // Negligible: below the rounding of both diagonals (relative test), or below the absolute floor.
        if (Math.abs(apq) <= floor || Math.abs(apq) <= 0.5 * EPS * Math.sqrt(Math.abs(app * aqq))) {
          A[p * n + q] = 0;
          A[q * n + p] = 0;
          continue;
        }
        rotated = true;
        const theta = (aqq - app) / (2 * apq);
        // tan φ; for huge θ, t ≈ 1/(2θ) avoids θ² overflowing.
        const t = Math.abs(theta) > 1e150 ? 1 / (2 * theta) : Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // Columns p and q: a'_kp = c·a_kp − s·a_kq, a'_kq = s·a_kp + c·a_kq.
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p]!;
          const akq = A[k * n + q]!;
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        // Rows p and q (the same rotation from the left).
        const rp = p * n;
        const rq = q * n;
        for (let k = 0; k < n; k++) {
          const apk = A[rp + k]!;
          const aqk = A[rq + k]!;
          A[rp + k] = c * apk - s * aqk;
          A[rq + k] = s * apk + c * aqk;
        }
        // The 2×2 block exactly: a'_pp = a_pp − t·a_pq, a'_qq = a_qq + t·a_pq, a'_pq = 0.
        A[rp + p] = app - t * apq;
        A[rq + q] = aqq + t * apq;
        A[rp + q] = 0;
        A[rq + p] = 0;
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p]!;
          const vkq = V[k * n + q]!;
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
    if (!rotated) break;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => A[j * n + j]! - A[i * n + i]!);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = A[src * n + src]!;
    for (let k = 0; k < n; k++) vectors[k * n + dst] = V[k * n + src]!;
  });
  return { values, vectors };
}

/**
 * One-sided Jacobi on the n columns of Y (each of length m, stored contiguously): rotates pairs until every pair is
 * orthogonal to rounding (|y_p·y_q| ≤ ε·‖y_p‖‖y_q‖), applying each rotation to the columns of X (length len) too.
 * The rotation is symmetric Jacobi's on YᵀY: α = ‖y_p‖², β = ‖y_q‖², γ = y_p·y_q, ζ = (β − α)/2γ, t = tan φ.
 */
function oneSidedJacobi(Y: Float64Array, m: number, X: Float64Array, len: number, maxSweeps: number): void {
  const n = Y.length / m;
  const EPS = 2.220446049250313e-16;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const yp = p * m;
        const yq = q * m;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let r = 0; r < m; r++) {
          const u = Y[yp + r]!;
          const v = Y[yq + r]!;
          alpha += u * u;
          beta += v * v;
          gamma += u * v;
        }
        if (gamma === 0 || Math.abs(gamma) <= EPS * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.abs(zeta) > 1e150 ? 1 / (2 * zeta) : Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let r = 0; r < m; r++) {
          const u = Y[yp + r]!;
          const v = Y[yq + r]!;
          Y[yp + r] = c * u - s * v;
          Y[yq + r] = s * u + c * v;
        }
        const xp = p * len;
        const xq = q * len;
        for (let r = 0; r < len; r++) {
          const u = X[xp + r]!;
          const v = X[xq + r]!;
          X[xp + r] = c * u - s * v;
          X[xq + r] = s * u + c * v;
        }
      }
    }
    if (!rotated) break;
  }
}

/**
 * Thin SVD of a row-major (m, n) matrix. With m ≥ n: the eigenvectors W of the Gram matrix AᵀA (n, n) by Jacobi,
 * then Y = A·W polished by one-sided Jacobi (Y and W rotated together), σ_i = ‖Y_i‖, U_i = Y_i / σ_i, V = W; the
 * cost is that of the Gram eigenproblem (n³ per sweep) plus m·n² per polishing sweep. With m < n the same on Aᵀ. A column of U whose σ is 0 (a rank-deficient A) is left at zero: it
 * contributes nothing to U·diag(S)·Vᵀ.
 */
export function svd(a: ArrayLike<number>, m: number, n: number, options: EigenOptions = {}): SVD {
  if (!(Number.isInteger(m) && Number.isInteger(n) && m >= 1 && n >= 1)) throw new RangeError(`svd: shape (${m}, ${n}) must be positive integers`);
  if (a.length !== m * n) throw new RangeError(`svd: expected ${m}×${n} = ${m * n} values, got ${a.length}`);
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) throw new RangeError(`svd: element ${i} is ${a[i]}, expected a finite number`);
  if (m < n) {
    const t = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
    const r = svd(t, n, m, options);
    return { m, n, k: r.k, U: r.V, S: r.S, V: r.U };
  }
  // G = AᵀA (n, n), as a sum of rank-1 updates row by row (contiguous reads); the lower half mirrored after.
  const G = new Float64Array(n * n);
  const row = new Float64Array(n);
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < n; j++) row[j] = a[r * n + j]!;
    for (let i = 0; i < n; i++) {
      const x = row[i]!;
      if (x === 0) continue;
      const gi = i * n;
      for (let j = i; j < n; j++) G[gi + j] = G[gi + j]! + x * row[j]!;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) G[i * n + j] = G[j * n + i]!;
  const { vectors: W } = symmetricEigen(G, n, options);
  // Columns stored contiguously (column j at j·len): Yc = (A·W)ᵀ (n, m) and Wc = Wᵀ (n, n).
  const Yc = new Float64Array(n * m);
  const Wc = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Wc[j * n + i] = W[i * n + j]!;
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < n; j++) row[j] = a[r * n + j]!;
    for (let j = 0; j < n; j++) {
      let y = 0;
      const wj = j * n;
      for (let i = 0; i < n; i++) y += row[i]! * Wc[wj + i]!;
      Yc[j * m + r] = y;
    }
  }
  // The Gram route leaves the columns of A·W orthogonal only to ε·κ² (κ = σ_max/σ_min). One-sided Jacobi sweeps
  // (Hestenes) on those columns, the same rotations applied to W, restore orthogonality to ε and give the small σ
  // their relative accuracy; starting this close they converge in one or two sweeps.
  oneSidedJacobi(Yc, m, Wc, n, options.maxSweeps ?? 60);
  const sigma = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let r = 0; r < m; r++) s += Yc[j * m + r]! * Yc[j * m + r]!;
    sigma[j] = Math.sqrt(s);
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => sigma[j]! - sigma[i]!);
  const U = new Float64Array(m * n);
  const S = new Float64Array(n);
  const V = new Float64Array(n * n);
  const tiny = 1e-300;
  order.forEach((src, dst) => {
    const s = sigma[src]!;
    S[dst] = s;
    for (let i = 0; i < n; i++) V[i * n + dst] = Wc[src * n + i]!;
    if (s > tiny) for (let r = 0; r < m; r++) U[r * n + dst] = Yc[src * m + r]! / s;
  });
  return { m, n, k: n, U, S, V };
}

/**
 * The smallest rank whose singular values keep at least `energy` of Σσ² (the squared Frobenius norm): ‖A − A_r‖²_F =
 * Σ_{i≥r} σ_i². energy in (0, 1]; 1 keeps every nonzero σ (up to 1e-12 of the total, rounding).
 */
export function rankForEnergy(S: ArrayLike<number>, energy: number): number {
  if (!(energy > 0 && energy <= 1)) throw new RangeError(`rankForEnergy: energy = ${energy}, expected a number in (0, 1]`);
  let total = 0;
  for (let i = 0; i < S.length; i++) total += S[i]! * S[i]!;
  if (total === 0) return 1;
  const want = energy * total * (1 - 1e-12);
  let cum = 0;
  for (let i = 0; i < S.length; i++) {
    cum += S[i]! * S[i]!;
    if (cum >= want) return i + 1;
  }
  return S.length;
}

/** The fraction of Σσ² that the first r singular values hold. */
export function energyOfRank(S: ArrayLike<number>, r: number): number {
  let total = 0;
  let kept = 0;
  for (let i = 0; i < S.length; i++) {
    total += S[i]! * S[i]!;
    if (i < r) kept += S[i]! * S[i]!;
  }
  return total === 0 ? 1 : kept / total;
}
