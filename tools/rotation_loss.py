#!/usr/bin/env python
"""Calibration loss of QuaRot's randomized Hadamard students (`rotation_signs=True`, one student per seed) on the teacher's
decoding states drawn once (seed 0) for every seed, so only the rotation differs: per block the block MSE, and for the
whole student `calib.student_kl`: KL(teacher || student) at the masked answer positions of those states (calibration rows only). Notebook 23_converge
correlates it with each student's answer KL on validation (`tools/converge.py --settings quarot_rs --eval`). Nothing is
learned, so the loss is the block MSE of the rotated, rounded student; the student is the same one `quarot_rs` scores.

    OMP_NUM_THREADS=1 python tools/rotation_loss.py --model tiny-llada --seeds 0 1 2 3 4 5 6 7"""
import argparse, json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from converge import OUT, splits_for

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='tiny-llada'); ap.add_argument('--seeds', nargs='+', type=int, default=list(range(8)))
    ap.add_argument('--out', type=Path, default=OUT/'val256'/'nullfloor')
    a = ap.parse_args(argv)
    import torch
    import fair_calib_nb.calib as C
    from fair_calib_nb.models import load_dllm
    from fair_calib_nb.tasks import calib_pairs
    torch.set_num_threads(1)
    teacher = load_dllm(a.model); P, A = calib_pairs(splits_for(128, 256), 128)
    states = C.calib_data(teacher, P, A, 'states', 0)                 # drawn once: every seed sees the same rows
    draw, C.calib_data = C.calib_data, lambda *args, **kw: states
    rows, kls = {}, {}
    try:
        for s in a.seeds:
            st = C.calibrate(teacher, P, A, C.CalibConfig(method='quarot', rotation_signs=True, data='states', seed=s), progress=False)
            rows[s], kls[s] = [b['mse'] for b in st.calib_log['blocks']], C.student_kl(teacher, st, states)
    finally: C.calib_data = draw
    a.out.mkdir(parents=True, exist_ok=True)
    f = a.out/f'{a.model}-states-mse.json'
    f.write_text(json.dumps(dict(model=a.model, setting='quarot_rs', data='states', data_seed=0, block_mse=rows, output_kl=kls), indent=1))
    print(f, {s: [round(x, 4) for x in v] for s, v in rows.items()}, {s: round(v, 5) for s, v in kls.items()})

if __name__ == '__main__':
    sys.exit(main())
