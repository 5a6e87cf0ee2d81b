"""Frontier metric time for 1,000 traces and Stage I probing time for N_probe = 512 on tiny-llada.
Run alone: `python benchmarks/bench_frontier_prior.py [--threads 2]`."""
import argparse, time, torch
from fair_calib_nb.models import load_dllm
from fair_calib_nb.tasks import make_splits
from fair_calib_nb.decode import Trace
from fair_calib_nb.frontier import stability_lag, lag_ccdf, hit_map, reliability
from fair_calib_nb.prior import build_prior, PriorConfig, Prior

if __name__ == '__main__':
    a = argparse.ArgumentParser(); a.add_argument('--threads', type=int, default=2); a = a.parse_args()
    torch.set_num_threads(a.threads)
    d = load_dllm('tiny-llada'); calib = [p for s in make_splits(0).values() for p in s['calib'].prompts]
    t = time.perf_counter(); prior, tr = build_prior(d, calib, PriorConfig(n_probe=512), progress=False, return_trace=True)
    print(f'Stage I probing, N_probe=512 on tiny-llada: {time.perf_counter()-t:.1f} s (target < 120 s); {prior}')
    tr1000 = Trace.cat([tr, tr[:488]])
    t = time.perf_counter()
    for _ in range(5):
        lag = stability_lag(tr1000); lag_ccdf(lag); stability_lag(tr1000, 'first'); hit_map(tr1000)
        for kind in ('maxprob', 'entropy', 'margin'): reliability(tr1000, kind)
        Prior.from_traces(tr1000)
    ms = (time.perf_counter() - t) / 5 * 1000
    print(f'all frontier metrics + prior on {tr1000.batch_size} traces (T={tr1000.steps}, G={tr1000.gen_length}): {ms:.1f} ms')
    for n in (64, 128, 256):
        p1 = build_prior(d, calib, PriorConfig(n_probe=n, seed=1), progress=False)
        p2 = build_prior(d, calib, PriorConfig(n_probe=2*n, seed=2), progress=False)
        print(f'L1 distance (mean |w_N - w_2N|) between priors at N={n} and 2N={2*n}: {(p1.window - p2.window).abs().mean():.4f}')
