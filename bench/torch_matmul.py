"""PyTorch side of lmforge's matmul benchmark (bench/matmul.ts); reusable by other suites that time torch ops.

Serves timing requests so both sides can be interleaved in one run: prints one JSON line describing itself
({"torch": version, "threads": n, "blas": library}), then answers each JSON request line read from stdin,
{"M", "N", "K", "transA", "transB", "reps", "warmup"}, with {"seconds": [...]} (one wall time per rep).
Not a benchmark by itself and never used at run time by lmforge.

Usage: /usr/bin/python3 bench/torch_matmul.py THREADS
"""
import json
import sys
import time


def blas_library():
    """The BLAS shared object this process actually mapped (torch links libblas.so.3 through alternatives)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
        return ", ".join(sorted(paths)) or "none mapped"
    except OSError:
        return "unknown"


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    try:
        import torch
    except ImportError as error:
        print(json.dumps({"error": f"import torch failed: {error}"}), flush=True)
        return
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    torch.mm(torch.ones(8, 8), torch.ones(8, 8))  # load the BLAS before reporting it
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_library()}),
          flush=True)
    cached = (None, None)  # the last request's shape and operands, reused while the shape repeats
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        m, n, k = req["M"], req["N"], req["K"]
        key = (m, n, k, bool(req.get("transA")), bool(req.get("transB")))
        if cached[0] != key:
            # Stored shapes follow MatmulArgs: A is (K, M) when transA, B is (N, K) when transB.
            a = torch.randn(k, m).t() if key[3] else torch.randn(m, k)
            b = torch.randn(n, k).t() if key[4] else torch.randn(k, n)
            cached = (key, (a, b, torch.empty(m, n)))
        a, b, out = cached[1]
        for _ in range(req.get("warmup", 2)):
            torch.mm(a, b, out=out)
        seconds = []
        for _ in range(req.get("reps", 5)):
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            seconds.append(time.perf_counter() - t0)
        print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
