"""GEMM throughput of Debian's python3-torch, the yardstick for bench/gemm.ts (same sizes, same threads)."""
import json
import sys
import time

import torch


def gflops(n: int, seconds: float) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)  # warm-up
    iters, start = 0, time.perf_counter()
    while True:
        torch.mm(a, b, out=c)
        iters += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2.0 * n ** 3 * iters / elapsed / 1e9


if __name__ == "__main__":
    n, seconds, threads = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    print(json.dumps({"n": n, "gflops": gflops(n, seconds), "threads": torch.get_num_threads(), "torch": torch.__version__}))
