// Run under mpirun by comm.test.ts (not a test file): every collective of the MPI Comm on float32 and bf16,
// checked against the values each rank can compute alone; prints `COMM {json}` per rank.
import assert from 'node:assert/strict';
import { initDistributed } from '../../../src/train/distributed/comm.js';

const f2bf = (x: number): number => new Uint16Array(new Float32Array([x]).buffer)[1]!; // exact for small integers
const bf2f = (h: number): number => new Float32Array(new Uint32Array([h << 16]).buffer)[0]!;

const comm = initDistributed();
const { rank: r, size: N } = comm;
const checked: string[] = [];

// all-reduce: rank r holds r + i; the sum is N·i + N(N−1)/2; max is N−1 + i.
const a = Float32Array.from({ length: 1001 }, (_, i) => r + i);
comm.allReduce(a);
a.forEach((v, i) => assert.equal(v, N * i + (N * (N - 1)) / 2));
const mx = Float32Array.from({ length: 7 }, (_, i) => r + i);
comm.allReduce(mx, 'max');
mx.forEach((v, i) => assert.equal(v, N - 1 + i));
const d = new Float64Array([r + 0.5]);
comm.allReduce(d);
assert.equal(d[0], (N * (N - 1)) / 2 + N / 2);
checked.push('allReduce');

const h = Uint16Array.from({ length: 64 }, (_, i) => f2bf(r + (i % 8)));
comm.allReduce(h);
h.forEach((v, i) => assert.equal(bf2f(v), N * (i % 8) + (N * (N - 1)) / 2));
checked.push('allReduce-bf16');

const req = comm.iallReduce(Float32Array.from({ length: 5 }, () => 1));
req.wait();
const ib = Float32Array.from({ length: 100_000 }, () => r);
const ireq = comm.iallReduce(ib);
while (!ireq.test()) { /* progress */ }
assert.equal(ib[99_999], (N * (N - 1)) / 2);
checked.push('iallReduce');

// reduce-scatter: block b of rank r holds 10b + r; rank r's result is N·10r + N(N−1)/2.
const k = 3;
const rs = Float32Array.from({ length: N * k }, (_, i) => 10 * Math.floor(i / k) + r);
const rsOut = new Float32Array(k);
comm.reduceScatter(rs, rsOut);
rsOut.forEach((v) => assert.equal(v, N * 10 * r + (N * (N - 1)) / 2));
const rsh = Uint16Array.from({ length: N * k }, (_, i) => f2bf(Math.floor(i / k) + r));
const rshOut = new Uint16Array(k);
comm.reduceScatter(rsh, rshOut);
rshOut.forEach((v) => assert.equal(bf2f(v), N * r + (N * (N - 1)) / 2));
checked.push('reduceScatter');

// all-gather: rank r contributes [r, r, r].
const ag = new Float32Array(N * k);
comm.allGather(new Float32Array(k).fill(r), ag);
ag.forEach((v, i) => assert.equal(v, Math.floor(i / k)));
const agh = new Uint16Array(N * 2);
comm.allGather(new Uint16Array(2).fill(f2bf(r)), agh);
agh.forEach((v, i) => assert.equal(bf2f(v), Math.floor(i / 2)));
checked.push('allGather');

const bc = new Float32Array(4).fill(r === N - 1 ? 42 : -1);
comm.broadcast(bc, N - 1);
bc.forEach((v) => assert.equal(v, 42));
checked.push('broadcast');

// all-to-all, equal blocks: rank r sends 100r + p to rank p.
const sendEq = Float32Array.from({ length: N * 2 }, (_, i) => 100 * r + Math.floor(i / 2));
const recvEq = new Float32Array(N * 2);
comm.allToAll(sendEq, recvEq);
recvEq.forEach((v, i) => assert.equal(v, 100 * Math.floor(i / 2) + r));
// uneven: rank r sends p + 1 copies of (100r + p) to rank p, so it receives r + 1 copies from each rank.
const sc = Int32Array.from({ length: N }, (_, p) => p + 1);
const rc = new Int32Array(N).fill(r + 1);
const sendV = new Uint16Array((N * (N + 1)) / 2);
let o = 0;
for (let p = 0; p < N; p++) for (let j = 0; j <= p; j++) sendV[o++] = 100 * r + p;
const recvV = new Uint16Array(N * (r + 1));
comm.allToAll(sendV, recvV, sc, rc);
recvV.forEach((v, i) => assert.equal(v, 100 * Math.floor(i / (r + 1)) + r));
checked.push('allToAll');

// ring of point-to-point messages, blocking (even ranks send first) and nonblocking.
const next = (r + 1) % N, prev = (r + N - 1) % N;
const got = new Float32Array(3);
if (r % 2 === 0) { comm.send(new Float32Array(3).fill(r), next, 7); comm.recv(got, prev, 7); }
else { comm.recv(got, prev, 7); comm.send(new Float32Array(3).fill(r), next, 7); }
got.forEach((v) => assert.equal(v, prev));
const got2 = new Uint16Array(2);
const rq = comm.irecv(got2, prev, 9);
const sq = comm.isend(new Uint16Array(2).fill(r), next, 9);
rq.wait(); sq.wait();
got2.forEach((v) => assert.equal(v, prev));
checked.push('sendRecv');

// split into even and odd ranks: an all-reduce over each half.
const half = comm.split(r % 2);
assert.equal(half.size, Math.ceil((N - (r % 2)) / 2));
const hs = new Float32Array([r]);
half.allReduce(hs);
let want = 0;
for (let p = r % 2; p < N; p += 2) want += p;
assert.equal(hs[0], want);
checked.push('split');

comm.barrier();
const bytes = comm.bytesSent();
console.log(`COMM ${JSON.stringify({ rank: r, size: N, checked, bytes })}`);
