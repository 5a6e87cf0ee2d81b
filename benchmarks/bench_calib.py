"""Stage II (layer-wise calibration) cost on the shipped models and on untrained copies 2x and 4x as deep: wall time and
peak resident memory per block (from the calibration log) and in total, with nearest and GPTQ rounding (target: GPTQ adds
at most 25% to Stage II). The cached activations (block input, full-precision target, one block's output) do not grow
with depth; the model does. One process per row, so memory starts clean.
Run alone (no other torch process): `python benchmarks/bench_calib.py [--threads 2] [--n-calib 128] [--epochs 8]`."""
import argparse, subprocess, sys, time
import torch
from transformers.utils import logging as hf_logging
from fair_calib_nb.calib import calibrate, CalibConfig
from fair_calib_nb.models import load_dllm
from fair_calib_nb.progress import peak_mb
from fair_calib_nb.train import new_model
from fair_calib_nb.tasks import make_splits, calib_pairs
hf_logging.disable_progress_bar()

def one(name, mult, weights, a):
    "Calibrate one model at one depth with one rounding and print a table row."
    torch.set_num_threads(a.threads)
    P, A = calib_pairs(make_splits(0), a.n_calib)
    t = load_dllm(name)
    if mult > 1: t = new_model(name, seed=0, **{'n_layers' if name == 'tiny-llada' else 'num_hidden_layers': mult * len(t.blocks)})
    before = peak_mb()
    t0 = time.time()
    st = calibrate(t, P, A, CalibConfig(method=a.method, epochs=a.epochs, weights=weights), progress=False); total = time.time() - t0
    blocks = st.calib_log['blocks']; peaks = [b['peak_mb'] for b in blocks]
    n = sum(p.numel() for p in t.model.parameters()) / 1e6
    print(f'| {name}{"" if mult == 1 else f" x{mult} (untrained)"} | {weights} | {len(blocks)} | {n:.2f} | '
          f'{total:.1f} | {total / len(blocks):.1f} | {before:.0f} | {max(peaks)} | ' + ' '.join(map(str, peaks)) + ' |', flush=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--n-calib', type=int, default=128)
    ap.add_argument('--epochs', type=int, default=8); ap.add_argument('--method', default='flatquant')
    ap.add_argument('--depths', type=int, nargs='+', default=[1, 2, 4])
    ap.add_argument('--one', nargs=3, metavar=('MODEL', 'MULT', 'WEIGHTS'), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one: return one(a.one[0], int(a.one[1]), a.one[2], a)
    print(f'{a.method}, W4A4 nf4, {3 * a.n_calib} calibration sequences, {a.epochs} epochs, {a.threads} threads, one process per row')
    print('| model | weights | blocks | params (M) | total s | s / block | RSS at start (MB) | peak RSS (MB) | per-block peaks (MB) |')
    print('|---|---|---|---|---|---|---|---|---|', flush=True)
    for name in ('tiny-llada', 'tiny-dream'):
        for mult in a.depths:
            for w in ('rtn', 'gptq'):
                subprocess.run([sys.executable, __file__, '--one', name, str(mult), w, '--threads', str(a.threads), '--n-calib', str(a.n_calib),
                                '--epochs', str(a.epochs), '--method', a.method], check=True)

if __name__ == '__main__': main()
