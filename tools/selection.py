#!/usr/bin/env python
"""Selection measures for QuaRot's random-sign draws (issue 28, round 6): which number, computed on the calibration prompts
only, best picks the draw that scores well on validation. Per draw (the `quarot_rs` student of that seed, the same one
`tools/converge.py --settings quarot_rs --eval` scores) the KL(teacher || student) at the masked answer positions of the
teacher's decoding states (drawn once, seed 0, four states per calibration prompt), averaged

- over the first state of every prompt (`kl`: what `best_rotation` uses today) or all four (`kl4`: more states),
- weighted by the paper's Stage I prior over the answer window (`fair`, `fair4`), by the deployed-rule decision prior
  (`decision`, `decision4`: frontier hits and fragility at each state), or by those weights permuted (`*_null`: the control).

    OMP_NUM_THREADS=1 python tools/selection.py --model tiny-llada --seeds 0 1 2 ... 23

Writes data/results/converge/val256/selection/<model>.json (existing draws are kept: the script resumes)."""
import argparse, json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from converge import OUT, splits_for

STATES = 4   # states per calibration prompt


def weightings(teacher, states, P):
    "Token-coordinate weights (N, L) of every weighting: None (uniform), the priors and their permuted nulls."
    import torch
    from fair_calib_nb.calib import prior_config
    from fair_calib_nb.prior import build_prior, state_weights, permute_window, PriorConfig
    N, L, p = *states.x.shape, states.prompt_length
    def full(win):
        w = torch.ones(N, L); w[:, p:] = win; return w
    fair = build_prior(teacher, P, prior_config('fair'), progress=False)
    dec = build_prior(teacher, P, prior_config('decision'), progress=False)
    fw = fair.window.float()[None].expand(N, -1)
    dw = state_weights(states.trace, states.runs, states.steps, PriorConfig(**dec.config), dec.config['prompt_floor'])
    return {'': None, 'fair': full(fw), 'decision': full(dw),
            'fair_null': full(permute_window(fw.clone(), 0, per_row=True)), 'decision_null': full(permute_window(dw, 0, per_row=True))}


def measures(kl, m, ws, B) -> dict:
    "Weighted means of the KL (N, L) at masked answer positions `m`: on the first state of each prompt and on all of them."
    out = {}
    for name, w in ws.items():
        ww = m if w is None else m * w
        for rows, suf in ((slice(0, B), ''), (slice(None), '4')):
            out[(name or 'kl') + suf] = float((ww[rows] * kl[rows]).sum() / ww[rows].sum())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='tiny-llada'); ap.add_argument('--seeds', nargs='+', type=int, default=list(range(24)))
    ap.add_argument('--out', type=Path, default=OUT/'val256'/'selection')
    a = ap.parse_args(argv)
    import torch
    import fair_calib_nb.calib as C
    from fair_calib_nb.models import load_dllm
    from fair_calib_nb.tasks import calib_pairs
    torch.set_num_threads(1)
    f = a.out/f'{a.model}.json'; a.out.mkdir(parents=True, exist_ok=True)
    res = json.loads(f.read_text()) if f.exists() else dict(model=a.model, states_per_prompt=STATES, data_seed=0, draws={})
    teacher = load_dllm(a.model); P, A = calib_pairs(splits_for(128, 256), 128)
    states = C.calib_data(teacher, P, A, 'states', 0, STATES)
    one = C.calib_data(teacher, P, A, 'states', 0, 1)
    B = len(P); assert torch.equal(states.x[:B], one.x), 'the first state of each prompt must be the one-state draw'
    m = (states.x == teacher.mask_id).float(); m[:, :states.prompt_length] = 0
    ws = weightings(teacher, states, P)
    for s in a.seeds:
        if str(s) in res['draws']: continue
        t0 = time.time()
        st = C.calibrate(teacher, P, A, C.CalibConfig(method='quarot', rotation_signs=True, seed=s), progress=False)
        kl = C.position_kl(teacher, st, states)
        res['draws'][str(s)] = dict(measures(kl, m, ws, B), seconds=round(time.time() - t0, 1))
        f.write_text(json.dumps(res, indent=1)); print(s, res['draws'][str(s)], flush=True)


if __name__ == '__main__':
    sys.exit(main())
