#!/usr/bin/env python
"""The flip atlas of notebook 18_atlas on both shipped models: RTN, QuaRot and FlatQuant W4A4 students (seed 0),
teacher-forced trajectories of the whole validation split, stored in data/results/atlas/atlas.json.
Run alone: `python tools/atlas.py [--threads 2] [--limit 256]`."""
import argparse, json, time
import torch
from fair_calib_nb.models import load_dllm, DATA
from fair_calib_nb.tasks import make_splits, calib_pairs
from fair_calib_nb.calib import calibrate, CalibConfig
from fair_calib_nb.atlas import atlas_report

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--threads', type=int, default=2); ap.add_argument('--limit', type=int, default=256)
    ap.add_argument('--models', nargs='+', default=['tiny-llada', 'tiny-dream'])
    a = ap.parse_args(); torch.set_num_threads(a.threads)
    sp = make_splits(0); P, A = calib_pairs(sp, 128); out = {}
    path = DATA/'results'/'atlas'/'atlas.json'; path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists(): out = json.loads(path.read_text())
    for m in a.models:
        t0 = time.time(); teacher = load_dllm(m)
        students = {k: calibrate(teacher, P, A, CalibConfig(method=k), progress=False) for k in ('rtn', 'quarot', 'flatquant')}
        out[m] = atlas_report(teacher, students, {s: d['val'].prompts[:a.limit] for s, d in sp.items()})
        out[m]['seconds'] = round(time.time() - t0, 1)
        path.write_text(json.dumps(out, indent=1)); print(m, 'done in', out[m]['seconds'], 's', flush=True)
