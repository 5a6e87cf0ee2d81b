#!/usr/bin/env python
"""The experiments behind notebook 23_converge: why Stage II students scatter across seeds and what makes them converge.
One JSON per (model, setting, seed) in data/results/converge/<model>/<setting>-s<seed>.json (an existing file is kept:
the script resumes). Run it alone, one torch thread:

    OMP_NUM_THREADS=1 python tools/converge.py --model tiny-llada --settings flatquant clips_only --seeds 0 1 2 3
    OMP_NUM_THREADS=1 python tools/converge.py --model tiny-llada --settings flatquant converge quarot --seeds 0 1 2 3 --eval
    python tools/converge.py --list        # the settings

Every learned setting holds 1/8 of its calibration rows out of training (every 8th row, the same rows for every seed)
and records the block loss on them and on the training rows at the start (the Hadamard initialisation), after each
epoch and at the end (after folding and rounding). With --eval the student is also scored on the first --limit
validation problems per suite (never the test split): accuracy, answer agreement with the teacher, answer KL, flips."""
import argparse, json, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT/'data'/'results'/'converge'
PROGRESS = None   # bars as log lines (LineBar); progress=False currently fails in LineBar.refresh (reported)
HO = dict(holdout=0.125)   # diagnosis: every learned setting is measured on the same held-out rows
# name: (CalibConfig fields, calibration pairs per suite)
SETTINGS = {
    'flatquant': (dict(method='flatquant', recipe='flatquant', **HO), 128),                 # FlatQuant's recipe (7/8 of its rows)
    'quarot': (dict(method='quarot'), 128),                                                # the deterministic start
    'clips_only': (dict(method='flatquant', learn_transforms=False, **HO), 128),            # transforms stay Hadamard
    'transforms_only': (dict(method='flatquant', learn_clips=False, **HO), 128),           # clips stay at their init
    'smooth': (dict(method='flatquant', smooth=True, **HO), 128),                          # smoothing scales learned too
    'clip1': (dict(method='flatquant', clip_lr_mult=1.0, **HO), 128),                      # clips at the transforms' lr
    'lr5e-4': (dict(method='flatquant', lr=5e-4, **HO), 128),
    'lr8e-3': (dict(method='flatquant', lr=8e-3, **HO), 128),
    'bs8': (dict(method='flatquant', batch_size=8, **HO), 128),                           # 4x the steps, same passes
    'e32': (dict(method='flatquant', epochs=32, **HO), 128),                               # 4x the steps, same data
    'order0': (dict(method='flatquant', order_seed=0, **HO), 128),                         # every seed visits rows in seed 0's order
    'reg': (dict(method='flatquant', reg=1.0, **HO), 128),                                 # pulled toward the start
    'n512': (dict(method='flatquant', epochs=2, **HO), 512),                               # 4x the data, same steps
    'n512e8': (dict(method='flatquant', **HO), 512),                                       # 4x the data, 4x the steps
    'n2048': (dict(method='flatquant', epochs=1, **HO), 2048),                             # 16x the data (~98K tokens), 2x the steps
    'keepbest': (dict(method='flatquant', keep_best=True, **HO), 128),                     # FlatQuant + held-out keep-best
    'clips_keepbest': (dict(method='flatquant', learn_transforms=False, keep_best=True, **HO), 128),  # QuaRot + learned clips, kept on held-out
    'lr5e-4_keepbest': (dict(method='flatquant', lr=5e-4, keep_best=True, **HO), 128),     # the first candidate scored on val
    'converge': (dict(method='flatquant', recipe='converge'), 128),                        # the named recipe (= clips_keepbest)
    # the objective (round 3): what a block is calibrated on, rather than how it is optimised
    'converge_q': (dict(method='flatquant', recipe='converge', input_mode='quant'), 128),  # block input from the quantized prefix
    'converge_m': (dict(method='flatquant', recipe='converge', data='random_mask'), 128),  # answers partly masked, as in decoding
    'kb_q': (dict(method='flatquant', keep_best=True, input_mode='quant', **HO), 128),      # FlatQuant + keep-best, quantized prefix
    'kb_m': (dict(method='flatquant', keep_best=True, data='random_mask', **HO), 128),      # FlatQuant + keep-best, masked answers
    'kb_qm': (dict(method='flatquant', keep_best=True, input_mode='quant', data='random_mask', **HO), 128),  # both
    'kb_s': (dict(method='flatquant', keep_best=True, data='states', **HO), 128),          # FlatQuant + keep-best on the teacher's decoding states
    'kl_m': (dict(method='flatquant', keep_best=True, data='random_mask', objective='kl', **HO), 128),  # output KL at masked positions
    'kl_qm': (dict(method='flatquant', keep_best=True, data='random_mask', objective='kl', input_mode='quant', **HO), 128),
    # the confirmation with GPTQ weight rounding (issue 28: the same rounding on both sides)
    'quarot_gptq': (dict(method='quarot', weights='gptq'), 128),
    'kb_s_gptq': (dict(method='flatquant', keep_best=True, data='states', weights='gptq', **HO), 128),
    # the null floor (round 4): QuaRot's randomized Hadamard, random +-1 per channel from the seed; nothing is learned
    'quarot_rs': (dict(method='quarot', rotation_signs=True), 128),
    'quarot_best8': (dict(method='quarot', rotation_signs=True, rotation_trials=8), 128),  # 8 sign draws, lowest student_kl kept
    'kb_s_rs': (dict(method='flatquant', keep_best=True, data='states', rotation_signs=True, **HO), 128),  # kb_s from a randomized start
    'quarot_best8_gptq': (dict(method='quarot', rotation_signs=True, rotation_trials=8, weights='gptq'), 128),  # the same, GPTQ rounding
    # round 6 (tools/selection.py, RULE.md there): the measure stays student_kl, k = 16 draws
    'quarot_best16': (dict(method='quarot', rotation_signs=True, rotation_trials=16), 128),
}


def splits_for(n_calib:int, limit:int, split:str='val'):
    "Calibration problems (first `n_calib` per suite) and `split` limited to `limit` (None: whole), as the pipeline draws them."
    from fair_calib_nb.tasks import make_splits
    sp = make_splits(0, n_calib=max(256, n_calib))      # test and val are drawn first: the same problems for any n_calib
    return {s: {'calib': d['calib'], 'eval': type(d[split])(s, d[split].prompts[:limit], d[split].answers[:limit])} for s, d in sp.items()}


def _tokens(teacher, P, A) -> int:
    "Calibration tokens: the non-padding positions of the clean calibration sequences (prompt and answer window)."
    from fair_calib_nb.calib import calib_data
    return int(calib_data(teacher, P, A).attention_mask.sum())


def run_one(teacher, ref, name, seed, limit, do_eval, out:Path, split:str='val') -> dict:
    import torch
    from dataclasses import asdict
    from fair_calib_nb.calib import CalibConfig, calibrate
    from fair_calib_nb.tasks import calib_pairs
    from fair_calib_nb.evaluate import evaluate_student
    fields, n_calib = SETTINGS[name]
    cfg = CalibConfig(**fields, seed=seed); sp = splits_for(n_calib, limit or None, split)
    P, A = calib_pairs(sp, n_calib)
    t0, c0 = time.time(), time.process_time(); st = calibrate(teacher, P, A, cfg, progress=PROGRESS)
    calib_s, calib_cpu = time.time() - t0, time.process_time() - c0
    row = dict(model=teacher.name, setting=name, seed=seed, n_calib=n_calib, rows=st.calib_log.get('rows'), tokens=_tokens(teacher, P, A),
               config=asdict(cfg), calib_seconds=round(calib_s, 1), calib_cpu_seconds=round(calib_cpu, 1), threads=torch.get_num_threads(),
               blocks=[{k: b.get(k) for k in ('block', 'seconds', 'epoch_loss', 'train_loss', 'heldout_loss', 'best_epoch', 'mse', 'heldout_mse')}
                       for b in st.calib_log['blocks']])
    if 'rotation_trials' in st.calib_log: row.update(rotation_trials=st.calib_log['rotation_trials'], rotation_seed=st.calib_log['rotation_seed'])
    if do_eval:
        if ref.get('tf') is None: ref.update(_teacher(teacher, sp))
        t0, c0 = time.time(), time.process_time()
        r = evaluate_student(teacher, st, sp, tf=ref['tf'], teacher_answers=ref['answers'], split='eval', progress=PROGRESS)
        m = r['metrics']; row.update(eval_seconds=round(time.time() - t0, 1), eval_cpu_seconds=round(time.process_time() - c0, 1), limit=limit,
                                     metrics={k: m[k] for k in ('acc_mean', 'agreement', 'kl_answer', 'flip_rate_answer') if k in m},
                                     split=split, answers=r['answers'])
    return row


DERIVE = {'keepbest': 'flatquant'}   # a keep-best setting and the setting it equals but for keep_best


def run_blocks(teacher, name, seed, blocks) -> dict:
    """Blocks `blocks` only, exactly as `calibrate` trains them (full-precision block inputs: a block's training does not
    depend on the blocks before it), plus how far the learned parameters moved from their start."""
    import torch
    from dataclasses import asdict
    from fair_calib_nb.calib import (CalibConfig, calib_data, loss_weights, split_rows, run_block, prepare_block, train_block,
                                     finalize_block, weighted_mse, _params)
    from fair_calib_nb.quant import quantize_model
    from fair_calib_nb.tasks import calib_pairs
    fields, n_calib = SETTINGS[name]; cfg = CalibConfig(**fields, seed=seed)
    P, A = calib_pairs(splits_for(n_calib, 1), n_calib); t00, c00 = time.time(), time.process_time()
    data = calib_data(teacher, P, A, cfg.data_mode, cfg.seed); am, w = data.attention_mask, loss_weights(teacher, cfg, data)
    tr, ho = split_rows(len(data), cfg.holdout); st = quantize_model(teacher, cfg.quant_config())
    h, out = teacher.embed(data.x).detach(), []
    for l in range(max(blocks) + 1):
        target = run_block(teacher, teacher.blocks[l], h, am)
        if l in blocks:
            t0 = time.time(); wrapped = prepare_block(st, teacher, l, h[tr], am[tr], cfg); main, clips = _params(wrapped)
            m0, c0 = [p.detach().clone() for p in main], [torch.sigmoid(p.detach()).clone() for p in clips]
            log = train_block(st, st.blocks[l], wrapped, h[tr], target[tr], am[tr], w[tr], cfg, progress=PROGRESS,
                              held=(h[ho], target[ho], am[ho], w[ho]))
            with torch.no_grad():
                n0 = max(float(sum((p0 ** 2).sum() for p0 in m0)), 1e-12) ** 0.5
                mt = float(sum(((p - p0) ** 2).sum() for p, p0 in zip(main, m0))) ** 0.5 / n0 if main else 0.0
                mc = float(torch.cat([(torch.sigmoid(p) - q).abs().flatten() for p, q in zip(clips, c0)]).mean()) if clips else 0.0
            finalize_block(st, l, wrapped, cfg); o = run_block(st, st.blocks[l], h, am)
            out.append(dict(block=l, seconds=round(time.time() - t0, 1), **log, moved_transforms=mt, moved_clips=mc,
                            mse=float(weighted_mse(o[tr], target[tr], w[tr])), heldout_mse=float(weighted_mse(o[ho], target[ho], w[ho]))))
        h = target
    return dict(model=teacher.name, setting=name, seed=seed, n_calib=n_calib, rows=dict(train=len(tr), heldout=len(ho)),
                tokens=int(am.sum()), config=asdict(cfg), blocks_only=list(blocks),
                calib_seconds=round(time.time() - t00, 1), calib_cpu_seconds=round(time.process_time() - c00, 1),
                threads=torch.get_num_threads(), blocks=out)


def derived(d:Path, name:str, seed:int):
    """A keep-best run that equals its FlatQuant run exactly, or None. Blocks are trained on full-precision inputs, so a
    block's training does not depend on the blocks before it: the keep-best student of a seed is the FlatQuant student
    (same rows, order and steps) when every block's lowest held-out loss is at its last epoch."""
    twin = DERIVE.get(name); f = d/f'{twin}-s{seed}.json' if twin else None
    if f is None or not f.exists(): return None
    row = json.loads(f.read_text())
    if any(b['heldout_loss'].index(min(b['heldout_loss'])) != len(b['heldout_loss']) - 1 for b in row['blocks']): return None
    return {**row, 'setting': name, 'config': {**row['config'], 'keep_best': True}, 'derived_from': twin,
            'blocks': [{**b, 'best_epoch': len(b['heldout_loss']) - 1} for b in row['blocks']]}


def _teacher(teacher, sp):
    from fair_calib_nb.pipeline import teacher_states
    tf = teacher_states(teacher, sp, progress=PROGRESS)
    return dict(tf=tf, answers={s: t.answers for s, t in tf.items()})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='tiny-llada')
    ap.add_argument('--settings', nargs='+', default=['flatquant'])
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2, 3])
    ap.add_argument('--eval', action='store_true', help='also score each student on the validation split')
    ap.add_argument('--limit', type=int, default=100, help='problems per suite scored (0: the whole split; default 100)')
    ap.add_argument('--split', default='val', choices=['val', 'test'], help="'val' to choose (default), 'test' once to confirm")
    ap.add_argument('--out', type=Path, default=OUT)
    ap.add_argument('--blocks', nargs='+', type=int, help='train these blocks only (a per-block diagnosis; no evaluation)')
    ap.add_argument('--list', action='store_true', help='print the settings and exit')
    ap.add_argument('--threads', type=int, default=1, help='torch threads (default 1: the runs in data/results/converge)')
    a = ap.parse_args(argv)
    if a.list:
        for k, (f, n) in SETTINGS.items(): print(f'{k:16s} n_calib={n:5d} {f}')
        return 0
    bad = [s for s in a.settings if s not in SETTINGS]
    if bad: ap.error(f'unknown settings {bad}; use --list')
    import torch
    torch.set_num_threads(a.threads)
    from fair_calib_nb.models import load_dllm
    teacher, ref = load_dllm(a.model), {}
    d = a.out/(a.model + ('-blocks' if a.blocks else '')); d.mkdir(parents=True, exist_ok=True)
    for name in a.settings:
        seeds = a.seeds[:1] if SETTINGS[name][0]['method'] == 'quarot' and not SETTINGS[name][0].get('rotation_signs') else a.seeds
        for s in seeds:
            f = d/f'{name}-s{s}.json'
            if f.exists() and ('metrics' in json.loads(f.read_text()) or not a.eval): print('kept', f, flush=True); continue
            if a.blocks:
                row = run_blocks(teacher, name, s, a.blocks); f.write_text(json.dumps(row, indent=1))
                print(f"{name} s{s} blocks {a.blocks}: {row['calib_seconds']}s, held-out " + ' '.join(
                      f"b{b['block']} {b['heldout_loss'][0]:.4g}->{b['heldout_mse']:.4g} (best epoch {b['best_epoch']}, "
                      f"moved P {b['moved_transforms']:.3f}, clips {b['moved_clips']:.3f})" for b in row['blocks']), flush=True)
                continue
            row = derived(d, name, s)
            if row is None or (a.eval and 'metrics' not in row): row = run_one(teacher, ref, name, s, a.limit, a.eval, a.out, a.split)
            else: print(f'{name} s{s}: every block keeps its last epoch: the student is {row["derived_from"]}-s{s}, bit for bit', flush=True)
            f.write_text(json.dumps(row, indent=1))
            hl = [b['heldout_loss'] for b in row['blocks']]
            print(f"{name} s{s}: calib {row['calib_seconds']}s, held-out start->end per block "
                  + ' '.join(f"{h[0]:.3g}->{b['heldout_mse']:.3g}" if h else f"{b['mse']:.3g}" for h, b in zip(hl, row['blocks']))
                  + (f", acc {row['metrics']['acc_mean']:.3f}, KL {row['metrics']['kl_answer']:.4f} (eval {row['eval_seconds']}s)"
                     if 'metrics' in row else ''),
                  flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
