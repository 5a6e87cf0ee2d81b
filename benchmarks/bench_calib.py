"""Stage II (layer-wise calibration) cost: wall time and peak resident memory per block and in total, on both shipped
models and on untrained copies 2x and 4x as deep. The cached activations (block input, full-precision target, one block's
output) do not grow with depth; the model does. Measured (2 epochs, 2 threads): per-block peaks still drift up about
7 MB per block at 16 blocks with glibc's default malloc and about 3.5 MB per block with MALLOC_MMAP_THRESHOLD_=1048576
(large tensors returned to the OS), so most of the drift is allocator retention; the rest is not yet explained.
Run alone (no other torch process): `python benchmarks/bench_calib.py [--threads 2] [--n-calib 128] [--epochs 8]`."""
import argparse, subprocess, sys, time
import torch
from transformers.utils import logging as hf_logging
import fair_calib_nb.calib as C
from fair_calib_nb.models import load_dllm
from fair_calib_nb.train import new_model
from fair_calib_nb.tasks import make_splits
from fair_calib_nb.pipeline import _rss_mb, _reset_peak
hf_logging.disable_progress_bar()

def calibrate_measured(teacher, P, A, cfg):
    "Calibrate, recording per block the wall time and the peak RSS (VmHWM, reset before each block)."
    per, orig, t = [], C.finalize_block, [time.time()]
    def fin(student, l, wrapped, cfg_):
        orig(student, l, wrapped, cfg_); now = time.time()
        per.append((l, now - t[0], _rss_mb())); _reset_peak(); t[0] = now
    C.finalize_block = fin
    try:
        _reset_peak(); t0 = time.time(); st = C.calibrate(teacher, P, A, cfg, progress=False)
    finally: C.finalize_block = orig
    return st, time.time() - t0, per

def one(name, mult, a):
    "Calibrate one model at one depth (in its own process, so the memory numbers start clean) and print a table row."
    torch.set_num_threads(a.threads)
    sp = make_splits(0)
    P = [p for s in sp.values() for p in s['calib'].prompts[:a.n_calib]]; A = [x for s in sp.values() for x in s['calib'].answers[:a.n_calib]]
    layers = {'n_layers' if name == 'tiny-llada' else 'num_hidden_layers': 4 * mult}
    t = load_dllm(name) if mult == 1 else new_model(name, seed=0, **layers)
    t.name = name + ('' if mult == 1 else f' x{mult} (untrained)')
    before = _rss_mb('VmRSS')
    st, total, per = calibrate_measured(t, P, A, C.CalibConfig(method=a.method, epochs=a.epochs))
    peak = max(p for _, _, p in per)
    print(f'| {t.name} | {len(t.blocks)} | {sum(p.numel() for p in t.model.parameters())/1e6:.2f} | {total:.1f} | '
          f'{total / len(per):.1f} | {before:.0f} | {peak:.0f} | {peak - before:.0f} | '
          + ' '.join(f'{p:.0f}' for _, _, p in per) + ' |', flush=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--n-calib', type=int, default=128)
    ap.add_argument('--epochs', type=int, default=8); ap.add_argument('--method', default='flatquant')
    ap.add_argument('--one', nargs=2, metavar=('MODEL', 'MULT'), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one: return one(a.one[0], int(a.one[1]), a)
    print(f'{a.method}, W4A4 nf4, {3 * a.n_calib} calibration sequences, {a.epochs} epochs, {a.threads} threads, one process per row')
    print('| model | blocks | params (M) | total s | s / block | RSS before (MB) | peak RSS (MB) | peak above before (MB) | per-block peaks (MB) |')
    print('|---|---|---|---|---|---|---|---|---|', flush=True)
    for name in ('tiny-llada', 'tiny-dream'):
        for mult in (1, 2, 4):
            subprocess.run([sys.executable, __file__, '--one', name, str(mult), '--threads', str(a.threads), '--n-calib', str(a.n_calib),
                            '--epochs', str(a.epochs), '--method', a.method], check=True)

if __name__ == '__main__': main()
