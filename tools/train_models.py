#!/usr/bin/env python
"""Retrain the shipped models with `SHIPPED_RECIPES` (notebook 05_train), one after the other, into data/<family>/,
printing a quick validation accuracy (first 64 val problems per suite, default decoding) at every checkpoint, then
scoring the final model on the test split into eval.json.
Usage: `python tools/train_models.py [tiny-llada tiny-dream] [--threads 2] [--resume]`. Run it alone: two torch jobs on 2 cores
slow each other badly."""
import argparse, json, time
import torch
from fair_calib_nb.models import DATA
from fair_calib_nb.tasks import make_splits
from fair_calib_nb.train import SHIPPED_RECIPES, train_shipped
from fair_calib_nb.evaluate import write_eval

def quick_eval(n=64):
    from fair_calib_nb.evaluate import task_accuracy
    sp = {s: {'test': d['val']} for s, d in make_splits(0).items()}
    def cb(dllm, step):
        acc = task_accuracy(dllm, sp, 'test', limit=n, progress=False)
        print(json.dumps(dict(step=step, time=time.strftime('%H:%M:%S'), **{k: round(v, 3) for k, v in acc.items()})), flush=True)
    return cb

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('families', nargs='*', default=list(SHIPPED_RECIPES))
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--out', default=str(DATA))
    ap.add_argument('--resume', action='store_true', help='go on after the last completed recipe phase in OUT/<family>')
    a = ap.parse_args(); torch.set_num_threads(a.threads)
    for f in a.families:
        train_shipped(f, f'{a.out}/{f}', progress=False, callback=quick_eval(), resume=a.resume)
        print(json.dumps(dict(model=f, test=write_eval(f'{a.out}/{f}', progress=False)['accuracy'])), flush=True)
