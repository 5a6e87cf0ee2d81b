#!/usr/bin/env python
"""Issue 28 on one machine with a GPU, in one sitting: the validation screen of Stage II recipes (`tools/converge.py`
SETTINGS), the rule below picks one, then the test-split confirmation of it against QuaRot with rtn and gptq weights,
8 seeds, both shipped models; beside it the `torchrun` NCCL check of issue 30 (one rank: one GPU).

    PYTHONPATH=. python tools/converge_device.py --out DIR [--workers 8] [--budget 520] [--device cuda]
    python tools/converge_device.py --out /tmp/x --device cpu --workers 2 --smoke     # this script's own check on a CPU

Workers are processes sharing the device (the tiny models leave a GPU mostly idle); every finished student is one line
of DIR/rows.jsonl (calibration log, timings, validation or test metrics), the choice is DIR/selection.json, the NCCL
check DIR/nccl.json. Work still queued when the time budget runs out is dropped and named in DIR/dropped.json.
The tables come from `tools/converge.py --device-rows DIR/rows.jsonl` on any machine."""
import argparse, json, os, queue, subprocess, sys, time, traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from converge import SETTINGS, splits_for   # noqa: E402

MODELS = ('tiny-llada', 'tiny-dream')
VAL_ARMS = ['quarot', 'flatquant', 'converge', 'converge_q', 'converge_m', 'kb_q', 'kb_m', 'kb_qm', 'kb_s', 'kl_m', 'kl_qm']
VAL_SEEDS, TEST_SEEDS, VAL_LIMIT = [0, 1, 2, 3], list(range(8)), 256


def select(rows:list, models=MODELS) -> dict:
    "The validation rows' choice by the rule of notebook 23_converge (`choose_objective`), written before the runs."
    from fair_calib_nb.converge import choose_objective
    by = {m: {} for m in models}
    for r in rows:
        if r.get('split') == 'val' and 'metrics' in r and r['weights'] == 'rtn': by[r['model']].setdefault(r['setting'], []).append(r)
    best, scores = choose_objective(by)
    return dict(best=best, any_eligible=any(s['eligible'] for s in scores.values()), scores=scores)


def tasks_for(phase:str, arms, seeds, models=MODELS, weights=('rtn',)) -> list:
    "Seed-major order, so that a budget cut leaves whole seeds; QuaRot learns nothing and runs once (seed 0)."
    out = []
    for s in seeds:
        for m in models:
            for a in arms:
                for w in weights:
                    if SETTINGS[a][0]['method'] == 'quarot' and s != seeds[0]: continue
                    out.append(dict(split=phase, model=m, setting=a, seed=s, weights=w))
    return out


def _tf_path(tmp:Path, model:str, split:str) -> Path: return tmp/f'tf-{model}-{split}.pt'


def teacher_ref(teacher, model, split, limit, tmp:Path) -> dict:
    "The teacher's decoding of the evaluation problems (one per suite), saved for the workers; its accuracy."
    import torch
    from fair_calib_nb.evaluate import teacher_forced, default_decoding, score_suites
    sp = splits_for(128, limit, split); t0 = time.time()
    tf = {s: teacher_forced(teacher, d['eval'].prompts, default_decoding(teacher)) for s, d in sp.items()}
    f = _tf_path(tmp, model, split); torch.save(tf, str(f) + '.part'); os.replace(str(f) + '.part', f)
    acc = score_suites(sp, 'eval', {s: t.answers for s, t in tf.items()})
    return dict(kind='teacher', model=model, split=split, problems=sum(len(d['eval'].prompts) for d in sp.values()),
                acc_mean=acc['mean'], seconds=round(time.time() - t0, 1))


def run_task(t:dict, teacher, device:str, tmp:Path, limits:dict, fields_extra:dict) -> dict:
    "Calibrate one student on `device` and score it on its split against the teacher's saved decoding."
    import torch
    from dataclasses import asdict
    from fair_calib_nb.calib import CalibConfig, calibrate
    from fair_calib_nb.tasks import calib_pairs
    from fair_calib_nb.evaluate import evaluate_student
    fields, n_calib = SETTINGS[t['setting']]
    cfg = CalibConfig(**{**fields, **fields_extra}, seed=t['seed'], weights=t['weights'])
    sp = splits_for(n_calib, limits[t['split']], t['split']); P, A = calib_pairs(sp, n_calib)
    t0 = time.time(); st = calibrate(teacher, P, A, cfg, progress=False)
    if device.startswith('cuda'): torch.cuda.synchronize()
    calib_s = time.time() - t0
    f = _tf_path(tmp, t['model'], t['split'])
    while not f.exists(): time.sleep(0.5)           # the main process writes the teacher's decoding once
    tf = torch.load(f, weights_only=False); t0 = time.time()
    ev = dict(tf=tf, teacher_answers={s: x.answers for s, x in tf.items()}, split='eval', progress=False); fallback = None
    try: r = evaluate_student(teacher, st, sp, **ev)
    except Exception as e:   # the weight cache is new on CUDA: say so and score without it rather than lose the student
        fallback = f'{type(e).__name__}: {e}'; r = evaluate_student(teacher, st, sp, cache=False, **ev)
    m = r['metrics']
    keys = ('block', 'train_loss', 'heldout_loss', 'best_epoch', 'mse', 'heldout_mse')
    return dict(t, kind='student', cache_fallback=fallback, config=asdict(cfg), calib_seconds=round(calib_s, 2),
                eval_seconds=round(time.time() - t0, 2), rows=st.calib_log.get('rows'),
                blocks=[{k: b.get(k) for k in keys} for b in st.calib_log['blocks']],
                metrics={k: m[k] for k in ('acc_mean', 'agreement', 'kl_answer', 'flip_rate_answer', 'acc_sort', 'acc_walk') if k in m},
                frontier_counts=r['frontier_counts'])


def worker(wid, device, threads, tmp, limits, extra, tasks, results):
    import torch
    torch.set_num_threads(threads)
    from fair_calib_nb.models import load_dllm
    teachers = {}
    while True:
        t = tasks.get()
        if t is None: return
        results.put(dict(t, kind='started', worker=wid))
        try:
            if t['model'] not in teachers: teachers[t['model']] = load_dllm(t['model'], device=device)
            results.put(dict(run_task(t, teachers[t['model']], device, Path(tmp), limits, extra), worker=wid))
        except Exception as e:
            results.put(dict(t, kind='error', worker=wid, error=f'{type(e).__name__}: {e}', where=traceback.format_exc().strip().split('\n')[-4:]))


def nccl_check(out:Path, smoke:bool):
    "`fair-calib run` under torchrun (one rank) with NCCL and with gloo on the same GPU: the same results.json metrics?"
    args = ['--model', 'tiny-llada', '--methods', 'quarot', 'flatquant', '--limit', '16', '--n-lag', '8', '--n-probe', '16',
            '--epochs', '1', '--n-calib', '16']
    res = {}
    for be in (('gloo',) if smoke else ('nccl', 'gloo')):
        d = Path('/tmp')/f'nccl-check-{be}'; t0 = time.time()
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '1', '-m', 'fair_calib_nb', 'run',
               *args, '--out', str(d), '--overwrite']
        p = subprocess.run(cmd, env=dict(os.environ, FAIR_CALIB_DIST_BACKEND=be, OMP_NUM_THREADS='1'), capture_output=True, text=True)
        r = dict(rc=p.returncode, seconds=round(time.time() - t0, 1), tail=(p.stdout + p.stderr)[-1500:])
        if p.returncode == 0:
            j = json.loads((d/'results.json').read_text())
            r['metrics'] = {m: {k: v['mean'] for k, v in s.items()} for m, s in j['summary'].items()}; r['teacher'] = j['teacher']['metrics']
            r['environment'] = j.get('environment')
        res[be] = r
    if all(r['rc'] == 0 for r in res.values()) and len(res) == 2:
        a, b = res['nccl'], res['gloo']
        res['same'] = all(abs(a['metrics'][m][k] - b['metrics'][m][k]) <= 1e-6 * max(1, abs(b['metrics'][m][k]))
                          for m in b['metrics'] for k in b['metrics'][m] if isinstance(b['metrics'][m][k], (int, float)))
    (out/'nccl.json').write_text(json.dumps(res, indent=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', type=Path, required=True); ap.add_argument('--device', default='cuda')
    ap.add_argument('--workers', type=int, default=8); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--budget', type=float, default=520, help='seconds for everything (default 520)')
    ap.add_argument('--val-share', type=float, default=0.5, help='share of the budget for the validation screen')
    ap.add_argument('--smoke', action='store_true', help='a few problems, one epoch, two arms: this script checked on a CPU')
    ap.add_argument('--no-nccl', action='store_true')
    a = ap.parse_args(argv)
    import threading, multiprocessing as mp, tempfile
    import torch
    t_start = time.time(); a.out.mkdir(parents=True, exist_ok=True); tmp = Path(tempfile.mkdtemp())
    limits = dict(val=4, test=4) if a.smoke else dict(val=VAL_LIMIT, test=None)
    extra = dict(epochs=1) if a.smoke else {}
    val_arms = ['quarot', 'converge', 'kb_qm'] if a.smoke else VAL_ARMS
    val_seeds, test_seeds = ([0, 1], [0, 1]) if a.smoke else (VAL_SEEDS, TEST_SEEDS)
    log = (a.out/'rows.jsonl').open('a')
    def emit(row): log.write(json.dumps(row) + '\n'); log.flush()
    emit(dict(kind='env', torch=torch.__version__, device=a.device, workers=a.workers, threads=a.threads,
              gpu=torch.cuda.get_device_name() if a.device.startswith('cuda') else None, cpus=os.cpu_count()))
    nccl = None if a.no_nccl else threading.Thread(target=nccl_check, args=(a.out, a.smoke or not a.device.startswith('cuda')))
    if nccl: nccl.start()
    ctx = mp.get_context('spawn'); tasks, results = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(i, a.device, a.threads, str(tmp), limits, extra, tasks, results)) for i in range(a.workers)]
    for p in procs: p.start()
    phase_a = tasks_for('val', val_arms, val_seeds)
    for t in phase_a: tasks.put(t)
    from fair_calib_nb.models import load_dllm
    for split in ('val', 'test'):                 # the teacher's decodings, while the workers calibrate
        for m in MODELS: emit(teacher_ref(load_dllm(m, device=a.device), m, split, limits[split], tmp))
    rows, pending = [], {json.dumps(t, sort_keys=True) for t in phase_a}
    def collect(until, done=lambda: False):
        while time.time() < until and pending and not done():
            try: r = results.get(timeout=1)
            except queue.Empty: continue
            emit(r)
            if r['kind'] in ('student', 'error'):
                rows.append(r); pending.discard(json.dumps({k: r[k] for k in ('split', 'model', 'setting', 'seed', 'weights')}, sort_keys=True))
    collect(t_start + a.val_share * a.budget)
    dropped = []
    while True:                                   # validation work not started by now is dropped
        try: dropped.append(tasks.get_nowait())
        except queue.Empty: break
    for t in dropped: pending.discard(json.dumps(t, sort_keys=True))
    collect(t_start + a.val_share * a.budget + 60)   # let running validation students finish (a minute at most)
    sel = select(rows); sel['val_rows'] = sum(r['kind'] == 'student' for r in rows); emit(dict(kind='selection', **sel))
    (a.out/'selection.json').write_text(json.dumps(sel, indent=1))
    phase_b = tasks_for('test', ['quarot', sel['best']], test_seeds, weights=('rtn', 'gptq'))
    for t in phase_b: tasks.put(t); pending.add(json.dumps(t, sort_keys=True))
    collect(t_start + a.budget)
    while True:
        try: dropped.append(tasks.get_nowait())
        except queue.Empty: break
    for _ in procs: tasks.put(None)
    running = sorted(pending - {json.dumps(t, sort_keys=True) for t in dropped})
    (a.out/'dropped.json').write_text(json.dumps(dict(dropped=dropped, running=running), indent=1))
    for p in procs: p.join(timeout=2)
    for p in procs:
        if p.is_alive(): p.terminate()
    if nccl: nccl.join(timeout=max(1, t_start + a.budget + 30 - time.time()))
    print(f'done in {time.time() - t_start:.0f}s: {sum(r["kind"] == "student" for r in rows)} students, '
          f'{sum(r["kind"] == "error" for r in rows)} errors, {len(dropped)} dropped; chose {sel["best"]}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
