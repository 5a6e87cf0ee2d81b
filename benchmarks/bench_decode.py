"""Decoding throughput of the shipped models: batch 1 and 64, trace recording off and on.
Run alone (no other torch process): `python benchmarks/bench_decode.py [--threads 2]`."""
import argparse, time, torch
from fair_calib_nb.models import load_dllm
from fair_calib_nb.tasks import make_splits
from fair_calib_nb.decode import generate, default_decoding

def bench(dllm, prompts, batch, record, reps):
    generate(dllm, prompts[:batch], batch_size=batch, record=record, progress=False)        # warm-up
    t = time.perf_counter()
    for r in range(reps): generate(dllm, prompts[r*batch:(r+1)*batch], batch_size=batch, record=record, progress=False)
    dt = time.perf_counter() - t
    return reps * batch * default_decoding(dllm).gen_length / dt

if __name__ == '__main__':
    a = argparse.ArgumentParser(); a.add_argument('--threads', type=int, default=2); a = a.parse_args()
    torch.set_num_threads(a.threads)
    prompts = [p for s in make_splits(0).values() for p in s['test'].prompts]
    print(f'torch threads: {a.threads}; window 24, 12 steps, 3 blocks; tokens/s = response positions decoded per second')
    for name in ('tiny-llada', 'tiny-dream'):
        d = load_dllm(name)
        for batch, reps in ((1, 20), (64, 5)):
            off, on = bench(d, prompts, batch, False, reps), bench(d, prompts, batch, True, reps)
            print(f'{name:10s} batch {batch:3d}: record off {off:8.0f} tok/s, on {on:8.0f} tok/s, overhead {100*(off/on-1):+5.1f}%')
