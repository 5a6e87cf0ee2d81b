"""Time of one student's evaluation (`evaluate_student`: decode every problem, then the teacher-forced frontier metrics)
uncached vs inside `cached_weights` (each 4-bit weight dequantized once, the activation quantizer in place), at 1 and 2
torch threads, with a check that both give identical results. Wall-clock and CPU time (the process's, all threads) are
both printed: on a machine other work shares, the CPU time is the steadier of the two. The teacher's reference decode is done once beforehand,
as the pipeline does. Run alone (no other torch process): `python benchmarks/bench_eval.py [--model tiny-llada]
[--method quarot] [--limit 100] [--threads 1 2] [--reps 2]`."""
import argparse, time
import torch
from fair_calib_nb.quant import cached_weights   # first: quiets bitsandbytes' import notice
from fair_calib_nb.models import load_dllm
from fair_calib_nb.tasks import make_splits, calib_pairs
from fair_calib_nb.decode import default_decoding
from fair_calib_nb.calib import calibrate, CalibConfig
from fair_calib_nb.evaluate import evaluate_student, teacher_forced

def timed(fn):
    "Wall-clock and CPU seconds (all threads of this process) of `fn()`, and its result."
    t, c = time.perf_counter(), time.process_time(); out = fn(); return (time.perf_counter() - t, time.process_time() - c), out

def main(a):
    teacher, splits = load_dllm(a.model), make_splits(0)
    P, A = calib_pairs(splits, a.n_calib)
    student = calibrate(teacher, P, A, CalibConfig(method=a.method, quant=a.quant), progress=False)
    tf = {s: teacher_forced(teacher, d['test'].prompts[:a.limit], default_decoding(teacher)) for s, d in splits.items()}
    ev = lambda cache: evaluate_student(teacher, student, splits, limit=a.limit, tf=tf, progress=False, cache=cache, n_lag=a.n_lag)
    with cached_weights(student.model) as c: mb = c.nbytes / 1e6
    print(f'{student.name} ({a.method}, {a.quant}); {a.limit} problems per suite x {len(splits)} suites, n_lag={a.n_lag}; '
          f'torch {torch.__version__}; cache {mb:.1f} MB')
    for n in a.threads:
        torch.set_num_threads(n); times = {False: [], True: []}; rows = {}
        for _ in range(a.reps):                           # interleaved, so background load hits both alike
            for cache in (False, True):
                dt, rows[cache] = timed(lambda: ev(cache)); times[cache].append(dt)
        same = rows[False]['frontier_counts'] == rows[True]['frontier_counts'] and rows[False]['metrics'] == rows[True]['metrics']
        if not same: raise SystemExit('cached and uncached evaluations differ')
        (u, uc), (c, cc) = (min(times[k]) for k in (False, True))
        print(f'{n} thread(s): uncached {u:.1f} s, cached {c:.1f} s, ratio {u / c:.2f}x wall-clock; CPU time {uc:.1f} s vs {cc:.1f} s, '
              f'ratio {uc / cc:.2f}x (best of {a.reps}; identical metrics: {same})')

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--model', default='tiny-llada'); p.add_argument('--method', default='quarot'); p.add_argument('--quant', default='W4A4')
    p.add_argument('--limit', type=int, default=100); p.add_argument('--n-calib', type=int, default=32)
    p.add_argument('--n-lag', type=int, default=0); p.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    p.add_argument('--reps', type=int, default=2)
    main(p.parse_args())
