// N-API binding of MPI (Open MPI): the collectives and point-to-point calls that lmforge's distributed training
// uses, on float32, bf16 (Uint16Array), float64 and int32 buffers. Built as its own addon (lmforge_mpi.node) only
// where Open MPI's headers exist, so the kernel addon never links libmpi. Not a scheduler and not a collective
// implementation: every transfer is one MPI call, and MPI chooses the algorithm.
#define OMPI_SKIP_MPICXX 1  // the C API only: Open MPI's C++ bindings are deprecated and unused
#include <mpi.h>
#include <dlfcn.h>
#include <time.h>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>
#include <string>
#include "napi_util.h"

namespace lmf {
namespace {

bool initialized = false;
// Communicators by id: 0 is MPI_COMM_WORLD, split() appends (ids are never reused; a freed slot holds MPI_COMM_NULL).
std::vector<MPI_Comm> comms;
MPI_Op bf16Sum = MPI_OP_NULL, bf16Max = MPI_OP_NULL, bf16Min = MPI_OP_NULL;

// Dtype codes shared with src/train/distributed/comm.ts (NativeMpi): 0 f32, 1 bf16, 2 f64, 3 i32.
enum Dtype { F32 = 0, BF16 = 1, F64 = 2, I32 = 3 };

inline float bf16ToF32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even, NaN kept quiet (the same rounding as the bf16 kernels).
inline uint16_t f32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// MPI has no bf16 type: reductions on bf16 are user ops on 16-bit words, each pair added in float32 and rounded
// once (so a reduction tree rounds once per level, as bf16 collectives do on GPUs).
void bf16SumFn(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; i++) b[i] = f32ToBf16(bf16ToF32(a[i]) + bf16ToF32(b[i]));
}
void bf16MaxFn(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; i++) if (bf16ToF32(a[i]) > bf16ToF32(b[i])) b[i] = a[i];
}
void bf16MinFn(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; i++) if (bf16ToF32(a[i]) < bf16ToF32(b[i])) b[i] = a[i];
}

// How a rank waits for a transfer. Open MPI's blocking calls poll until done (mpi_yield_when_idle only adds
// sched_yield), so with more runnable processes than cores a waiting rank takes the CPU time the rank it waits for
// needs. In sleep mode (setWait(spinUs, maxSleepUs), spinUs >= 0) every call is its nonblocking form completed by
// settle(): MPI_Test for spinUs, then a nanosleep between tests doubling from 10 µs to maxSleepUs. spinUs < 0:
// the blocking calls.
int waitSpinUs = -1;
long waitMaxSleepUs = 200;

int settle(MPI_Request* req, MPI_Status* st) {
  if (waitSpinUs < 0) return MPI_Wait(req, st);
  const double t0 = MPI_Wtime();
  long pause = 10;
  for (;;) {
    int done = 0;
    int rc = MPI_Test(req, &done, st);
    if (rc != MPI_SUCCESS || done) return rc;
    if ((MPI_Wtime() - t0) * 1e6 < waitSpinUs) continue;
    struct timespec ts = {0, pause * 1000};
    nanosleep(&ts, nullptr);
    pause = std::min(pause * 2, waitMaxSleepUs);
  }
}

// The blocking call in spin mode, else its nonblocking form settled (same arguments, a request appended).
#define LMF_CALL(blocking, nonblocking, ...) \
  (waitSpinUs < 0 ? blocking(__VA_ARGS__) : settleCall(nonblocking(__VA_ARGS__, &lmfReq), &lmfReq))

inline int settleCall(int rc, MPI_Request* req) { return rc == MPI_SUCCESS ? settle(req, MPI_STATUS_IGNORE) : rc; }

bool mpiOk(Args& a, int rc, const char* what) {
  if (rc == MPI_SUCCESS) return true;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  std::string s = std::string(what) + ": " + std::string(msg, static_cast<size_t>(len));
  a.fail(s.c_str());
  return false;
}

bool ready(Args& a) {
  if (a.failed) return false;
  if (!initialized) { a.fail("MPI is not initialized (call init first)"); return false; }
  return true;
}

// Argument 0 of every transfer: the communicator id.
bool readComm(Args& a, MPI_Comm* out) {
  double id = a.num(0);
  if (!ready(a)) return false;
  size_t i = static_cast<size_t>(id);
  if (id < 0 || i >= comms.size() || comms[i] == MPI_COMM_NULL) { a.fail("unknown communicator", 0); return false; }
  *out = comms[i];
  return true;
}

int commSize(MPI_Comm c) {
  int n = 1;
  MPI_Comm_size(c, &n);
  return n;
}

// The element type of a typed array as an MPI datatype, with the dtype code it must match.
struct Buf {
  void* data = nullptr;
  size_t n = 0;
  Dtype dtype = F32;
  MPI_Datatype type = MPI_FLOAT;
};

bool readBuf(Args& a, size_t i, Buf& b) {
  if (a.failed) return false;
  bool is = false;
  napi_is_typedarray(a.env, a.argv[i], &is);
  if (!is) { a.fail("expected a typed array", i); return false; }
  napi_typedarray_type t;
  napi_get_typedarray_info(a.env, a.argv[i], &t, &b.n, &b.data, nullptr, nullptr);
  switch (t) {
    case napi_float32_array: b.dtype = F32; b.type = MPI_FLOAT; break;
    case napi_uint16_array: b.dtype = BF16; b.type = MPI_UINT16_T; break;
    case napi_float64_array: b.dtype = F64; b.type = MPI_DOUBLE; break;
    case napi_int32_array: b.dtype = I32; b.type = MPI_INT32_T; break;
    default: a.fail("expected a Float32Array, Uint16Array (bf16), Float64Array or Int32Array", i); return false;
  }
  if (b.n > static_cast<size_t>(INT32_MAX)) { a.fail("buffer longer than 2^31-1 elements", i); return false; }
  return true;
}

// op: 0 sum, 1 max, 2 min.
bool reduceOp(Args& a, const Buf& b, int op, MPI_Op* out) {
  if (op < 0 || op > 2) { a.fail("op must be 0 (sum), 1 (max) or 2 (min)"); return false; }
  if (b.dtype == BF16) *out = op == 0 ? bf16Sum : op == 1 ? bf16Max : bf16Min;
  else *out = op == 0 ? MPI_SUM : op == 1 ? MPI_MAX : MPI_MIN;
  return true;
}

// ---- nonblocking requests: the typed array stays referenced until wait/test sees it complete ----
struct Pending {
  MPI_Request req;
  napi_ref keep;
};
std::map<int32_t, Pending> pending;
int32_t nextRequest = 1;

int32_t addPending(napi_env env, napi_value buf, MPI_Request req) {
  Pending p{req, nullptr};
  napi_create_reference(env, buf, 1, &p.keep);
  int32_t id = nextRequest++;
  pending[id] = p;
  return id;
}

void release(napi_env env, std::map<int32_t, Pending>::iterator it) {
  napi_delete_reference(env, it->second.keep);
  pending.erase(it);
}

napi_value number(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

// init(): promotes libmpi to the global symbol scope, initializes MPI (funneled: only the JS thread calls
// it) and returns { rank, size, version }.
napi_value init(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.init", 0);
  if (!initialized) {
    // Node opens addons with RTLD_LOCAL, so libmpi's symbols are invisible to the plugins Open MPI dlopens
    // (mca_*.so) and MPI_Init fails with undefined symbols. Reopening libmpi (found from one of its own
    // symbols) with RTLD_GLOBAL puts it and its dependencies in the global scope first.
    Dl_info dl;
    void* self = reinterpret_cast<void*>(&MPI_Init);
    const char* path = dladdr(self, &dl) && dl.dli_fname ? dl.dli_fname : "libmpi.so.40";
    if (!dlopen(path, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) && !dlopen(path, RTLD_NOW | RTLD_GLOBAL)) {
      std::string s = std::string("cannot reopen ") + path + " with RTLD_GLOBAL: " + dlerror();
      a.fail(s.c_str());
      return nullptr;
    }
    int provided = 0;
    if (!mpiOk(a, MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread")) return nullptr;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Op_create(bf16SumFn, 1, &bf16Sum);
    MPI_Op_create(bf16MaxFn, 1, &bf16Max);
    MPI_Op_create(bf16MinFn, 1, &bf16Min);
    comms.assign(1, MPI_COMM_WORLD);
    initialized = true;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char ver[MPI_MAX_LIBRARY_VERSION_STRING];
  int vlen = 0;
  MPI_Get_library_version(ver, &vlen);
  while (vlen > 0 && (ver[vlen - 1] == '\n' || ver[vlen - 1] == '\0')) vlen--;
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "rank", number(env, rank));
  napi_set_named_property(env, obj, "size", number(env, size));
  napi_create_string_utf8(env, ver, static_cast<size_t>(vlen), &v);
  napi_set_named_property(env, obj, "version", v);
  return obj;
}

napi_value finalize(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.finalize", 0);
  if (initialized) {
    for (auto it = pending.begin(); it != pending.end();) {
      MPI_Wait(&it->second.req, MPI_STATUS_IGNORE);
      napi_delete_reference(env, it->second.keep);
      it = pending.erase(it);
    }
    for (size_t i = 1; i < comms.size(); i++) if (comms[i] != MPI_COMM_NULL) MPI_Comm_free(&comms[i]);
    comms.clear();
    MPI_Finalize();
    initialized = false;
  }
  return a.undefined();
}

// abort(code): ends every rank (an error on one rank must not leave the others blocked in a collective).
napi_value abortAll(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.abort", 1);
  int code = static_cast<int>(a.num(0));
  if (a.failed) return nullptr;
  if (initialized) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

// Every transfer takes the communicator id first (0 = world; see split).

// allReduce(comm, buf, op): in place over every rank of comm.
napi_value allReduce(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.allReduce", 3);
  MPI_Comm c;
  Buf b;
  MPI_Op mop;
  if (!readComm(a, &c) || !readBuf(a, 1, b) || !reduceOp(a, b, static_cast<int>(a.num(2)), &mop)) return nullptr;
  MPI_Request lmfReq;
  mpiOk(a, LMF_CALL(MPI_Allreduce, MPI_Iallreduce, MPI_IN_PLACE, b.data, static_cast<int>(b.n), b.type, mop, c), "MPI_Allreduce");
  return a.failed ? nullptr : a.undefined();
}

// iallReduce(comm, buf, op) → request id: starts an in-place all-reduce; wait(id) or test(id) completes it.
napi_value iallReduce(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.iallReduce", 3);
  MPI_Comm c;
  Buf b;
  MPI_Op mop;
  if (!readComm(a, &c) || !readBuf(a, 1, b) || !reduceOp(a, b, static_cast<int>(a.num(2)), &mop)) return nullptr;
  MPI_Request req;
  if (!mpiOk(a, MPI_Iallreduce(MPI_IN_PLACE, b.data, static_cast<int>(b.n), b.type, mop, c, &req), "MPI_Iallreduce")) return nullptr;
  return number(env, addPending(env, a.argv[1], req));
}

// reduceScatter(comm, send, recv, op): send holds size × recv.length elements; rank r receives the reduced block r.
napi_value reduceScatter(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.reduceScatter", 4);
  MPI_Comm c;
  Buf s, r;
  MPI_Op mop;
  if (!readComm(a, &c) || !readBuf(a, 1, s) || !readBuf(a, 2, r) || !reduceOp(a, s, static_cast<int>(a.num(3)), &mop)) return nullptr;
  if (s.dtype != r.dtype) { a.fail("send and recv must have the same element type"); return nullptr; }
  if (s.n != r.n * static_cast<size_t>(commSize(c))) { a.fail("send.length must be size × recv.length"); return nullptr; }
  MPI_Request lmfReq;
  mpiOk(a, LMF_CALL(MPI_Reduce_scatter_block, MPI_Ireduce_scatter_block, s.data, r.data, static_cast<int>(r.n), s.type, mop, c), "MPI_Reduce_scatter_block");
  return a.failed ? nullptr : a.undefined();
}

// allGather(comm, send, recv): recv holds size × send.length elements, rank r's block at r × send.length.
napi_value allGather(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.allGather", 3);
  MPI_Comm c;
  Buf s, r;
  if (!readComm(a, &c) || !readBuf(a, 1, s) || !readBuf(a, 2, r)) return nullptr;
  if (s.dtype != r.dtype) { a.fail("send and recv must have the same element type"); return nullptr; }
  if (r.n != s.n * static_cast<size_t>(commSize(c))) { a.fail("recv.length must be size × send.length"); return nullptr; }
  MPI_Request lmfReq;
  mpiOk(a, LMF_CALL(MPI_Allgather, MPI_Iallgather, s.data, static_cast<int>(s.n), s.type, r.data, static_cast<int>(s.n), r.type, c), "MPI_Allgather");
  return a.failed ? nullptr : a.undefined();
}

// broadcast(comm, buf, root): root's buffer copied into every rank's.
napi_value broadcast(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.broadcast", 3);
  MPI_Comm c;
  Buf b;
  if (!readComm(a, &c) || !readBuf(a, 1, b)) return nullptr;
  int root = static_cast<int>(a.num(2));
  if (a.failed) return nullptr;
  if (root < 0 || root >= commSize(c)) { a.fail("root is not a rank of the communicator", 2); return nullptr; }
  MPI_Request lmfReq;
  mpiOk(a, LMF_CALL(MPI_Bcast, MPI_Ibcast, b.data, static_cast<int>(b.n), b.type, root, c), "MPI_Bcast");
  return a.failed ? nullptr : a.undefined();
}

// Reads an Int32Array of per-rank element counts (or null for equal blocks) into counts + displacements.
bool readCounts(Args& a, size_t i, int size, size_t total, std::vector<int>& counts, std::vector<int>& displs) {
  size_t n = 0;
  int32_t* c = a.i32(i, &n, true);
  if (a.failed) return false;
  counts.assign(static_cast<size_t>(size), 0);
  displs.assign(static_cast<size_t>(size), 0);
  if (!c) {
    if (total % static_cast<size_t>(size) != 0) { a.fail("buffer length is not a multiple of size (pass counts)", i); return false; }
    for (int p = 0; p < size; p++) counts[p] = static_cast<int>(total / static_cast<size_t>(size));
  } else {
    if (n != static_cast<size_t>(size)) { a.fail("counts must have one entry per rank", i); return false; }
    for (int p = 0; p < size; p++) {
      if (c[p] < 0) { a.fail("counts must be >= 0", i); return false; }
      counts[p] = c[p];
    }
  }
  size_t off = 0;
  for (int p = 0; p < size; p++) { displs[p] = static_cast<int>(off); off += static_cast<size_t>(counts[p]); }
  if (off > total) { a.fail("counts add up to more than the buffer holds", i); return false; }
  return true;
}

// allToAll(comm, send, recv, sendCounts|null, recvCounts|null): block p of send goes to rank p; block p of recv
// comes from rank p. Counts are elements per rank, blocks packed in rank order; null means equal blocks.
napi_value allToAll(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.allToAll", 5);
  MPI_Comm c;
  Buf s, r;
  if (!readComm(a, &c) || !readBuf(a, 1, s) || !readBuf(a, 2, r)) return nullptr;
  if (s.dtype != r.dtype) { a.fail("send and recv must have the same element type"); return nullptr; }
  int size = commSize(c);
  std::vector<int> sc, sd, rc, rd;
  if (!readCounts(a, 3, size, s.n, sc, sd) || !readCounts(a, 4, size, r.n, rc, rd)) return nullptr;
  MPI_Request lmfReq;
  mpiOk(a, LMF_CALL(MPI_Alltoallv, MPI_Ialltoallv, s.data, sc.data(), sd.data(), s.type, r.data, rc.data(), rd.data(), r.type, c), "MPI_Alltoallv");
  return a.failed ? nullptr : a.undefined();
}

// Point-to-point: (comm, buf, peer, tag).
bool readP2p(Args& a, MPI_Comm* c, Buf& b, int* peer, int* tag) {
  if (!readComm(a, c) || !readBuf(a, 1, b)) return false;
  *peer = static_cast<int>(a.num(2));
  *tag = static_cast<int>(a.num(3));
  if (a.failed) return false;
  if (*peer < 0 || *peer >= commSize(*c)) { a.fail("peer is not a rank of the communicator", 2); return false; }
  if (*tag < 0) { a.fail("tag must be >= 0", 3); return false; }
  return true;
}

napi_value send(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.send", 4);
  MPI_Comm c;
  Buf b;
  int peer, tag;
  if (!readP2p(a, &c, b, &peer, &tag)) return nullptr;
  MPI_Request lmfReq;
  mpiOk(a, LMF_CALL(MPI_Send, MPI_Isend, b.data, static_cast<int>(b.n), b.type, peer, tag, c), "MPI_Send");
  return a.failed ? nullptr : a.undefined();
}

// recv(comm, buf, peer, tag): fills buf exactly; a message of another length is an error.
napi_value recv(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.recv", 4);
  MPI_Comm c;
  Buf b;
  int peer, tag;
  if (!readP2p(a, &c, b, &peer, &tag)) return nullptr;
  MPI_Status st;
  int rc;
  if (waitSpinUs < 0) {
    rc = MPI_Recv(b.data, static_cast<int>(b.n), b.type, peer, tag, c, &st);
  } else {
    MPI_Request req;
    rc = MPI_Irecv(b.data, static_cast<int>(b.n), b.type, peer, tag, c, &req);
    if (rc == MPI_SUCCESS) rc = settle(&req, &st);
  }
  if (!mpiOk(a, rc, "MPI_Recv")) return nullptr;
  int got = 0;
  MPI_Get_count(&st, b.type, &got);
  if (static_cast<size_t>(got) != b.n) { a.fail("received a message shorter than the buffer"); return nullptr; }
  return a.undefined();
}

// isend / irecv (comm, buf, peer, tag) → request id (pipeline stages overlap transfers with compute).
napi_value isend(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.isend", 4);
  MPI_Comm c;
  Buf b;
  int peer, tag;
  if (!readP2p(a, &c, b, &peer, &tag)) return nullptr;
  MPI_Request req;
  if (!mpiOk(a, MPI_Isend(b.data, static_cast<int>(b.n), b.type, peer, tag, c, &req), "MPI_Isend")) return nullptr;
  return number(env, addPending(env, a.argv[1], req));
}

napi_value irecv(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.irecv", 4);
  MPI_Comm c;
  Buf b;
  int peer, tag;
  if (!readP2p(a, &c, b, &peer, &tag)) return nullptr;
  MPI_Request req;
  if (!mpiOk(a, MPI_Irecv(b.data, static_cast<int>(b.n), b.type, peer, tag, c, &req), "MPI_Irecv")) return nullptr;
  return number(env, addPending(env, a.argv[1], req));
}

// wait(id): blocks until the request completes.
napi_value wait(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.wait", 1);
  int32_t id = static_cast<int32_t>(a.num(0));
  if (!ready(a)) return nullptr;
  auto it = pending.find(id);
  if (it == pending.end()) { a.fail("unknown or already completed request"); return nullptr; }
  int rc = settle(&it->second.req, MPI_STATUS_IGNORE);
  release(env, it);
  mpiOk(a, rc, "MPI_Wait");
  return a.failed ? nullptr : a.undefined();
}

// test(id) → true once complete (then the id is spent); each call also lets MPI progress the transfer.
napi_value test(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.test", 1);
  int32_t id = static_cast<int32_t>(a.num(0));
  if (!ready(a)) return nullptr;
  auto it = pending.find(id);
  if (it == pending.end()) { a.fail("unknown or already completed request"); return nullptr; }
  int done = 0;
  int rc = MPI_Test(&it->second.req, &done, MPI_STATUS_IGNORE);
  if (!mpiOk(a, rc, "MPI_Test")) return nullptr;
  if (done) release(env, it);
  napi_value r;
  napi_get_boolean(env, done != 0, &r);
  return r;
}

napi_value barrier(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.barrier", 1);
  MPI_Comm c;
  if (!readComm(a, &c)) return nullptr;
  MPI_Request lmfReq;
  mpiOk(a, LMF_CALL(MPI_Barrier, MPI_Ibarrier, c), "MPI_Barrier");
  return a.failed ? nullptr : a.undefined();
}

// split(comm, color, key) → { id, rank, size }: ranks with the same color form a new communicator, ordered by
// key (tensor-, pipeline- and data-parallel groups are splits of the world).
napi_value split(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.split", 3);
  MPI_Comm c;
  if (!readComm(a, &c)) return nullptr;
  int color = static_cast<int>(a.num(1)), key = static_cast<int>(a.num(2));
  if (a.failed) return nullptr;
  if (color < 0) { a.fail("color must be >= 0", 1); return nullptr; }
  MPI_Comm out;
  if (!mpiOk(a, MPI_Comm_split(c, color, key, &out), "MPI_Comm_split")) return nullptr;
  MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN);
  comms.push_back(out);
  int rank = 0, size = 1;
  MPI_Comm_rank(out, &rank);
  MPI_Comm_size(out, &size);
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "id", number(env, static_cast<double>(comms.size() - 1)));
  napi_set_named_property(env, obj, "rank", number(env, rank));
  napi_set_named_property(env, obj, "size", number(env, size));
  return obj;
}

napi_value wtime(napi_env env, napi_callback_info) { return number(env, MPI_Wtime()); }

// setWait(spinUs, maxSleepUs): spinUs < 0 for MPI's blocking calls, else poll spinUs then sleep (see settle).
napi_value setWait(napi_env env, napi_callback_info info) {
  Args a(env, info, "mpi.setWait", 2);
  double spin = a.num(0);
  double maxSleep = a.num(1);
  if (a.failed) return nullptr;
  if (!(maxSleep >= 1 && maxSleep <= 1e6)) { a.fail("maxSleepUs must be in [1, 1e6]", 1); return nullptr; }
  waitSpinUs = spin < 0 ? -1 : static_cast<int>(std::min(spin, 1e6));
  waitMaxSleepUs = static_cast<long>(maxSleep);
  return a.undefined();
}

napi_value initModule(napi_env env, napi_value exports) {
  defineFunction(env, exports, "init", init);
  defineFunction(env, exports, "finalize", finalize);
  defineFunction(env, exports, "abort", abortAll);
  defineFunction(env, exports, "allReduce", allReduce);
  defineFunction(env, exports, "iallReduce", iallReduce);
  defineFunction(env, exports, "reduceScatter", reduceScatter);
  defineFunction(env, exports, "allGather", allGather);
  defineFunction(env, exports, "broadcast", broadcast);
  defineFunction(env, exports, "allToAll", allToAll);
  defineFunction(env, exports, "send", send);
  defineFunction(env, exports, "recv", recv);
  defineFunction(env, exports, "isend", isend);
  defineFunction(env, exports, "irecv", irecv);
  defineFunction(env, exports, "wait", wait);
  defineFunction(env, exports, "test", test);
  defineFunction(env, exports, "barrier", barrier);
  defineFunction(env, exports, "split", split);
  defineFunction(env, exports, "wtime", wtime);
  defineFunction(env, exports, "setWait", setWait);
  return exports;
}

}  // namespace
}  // namespace lmf

NAPI_MODULE(NODE_GYP_MODULE_NAME, lmf::initModule)
