#!/usr/bin/env python
"""The checks that need a GPU (CI has none): run on a CUDA machine, they print one JSON line per check.

1. Saved students (bitsandbytes `Linear4bit`, NF4 W4A16 and W4A4 with our activation quantizer and FlatQuant transforms)
   on bitsandbytes' CUDA kernels against the same checkpoint on its CPU path: logits and decoded answers.
2. Stage I and II end to end with the teacher on the GPU (`quantize`, fair W4A4, RTN and GPTQ weights), saved, reloaded, scored.
3. The one-block dry run at a real size (`fair_calib_nb.dryrun`) on the GPU, FlatQuant with RTN and with GPTQ weights:
   time per step, per block and projected for the whole model, peak GPU memory.

    python tools/gpu_check.py [--device cuda] [--sizes llada-8b dream-7b] [--limit 64] [--out DIR]

`--device cpu --sizes none` runs the student part against itself (a smoke test of this script on a CPU machine).
A GPU machine without bitsandbytes (or fastcore) takes them unpacked from their wheels onto PYTHONPATH: `pip download
--no-deps --only-binary=:all: --platform manylinux_2_24_x86_64 --python-version 3.12 bitsandbytes==0.50.2 fastcore==1.14.5`,
unzip both into one folder, delete the `libbitsandbytes_*.so` that do not match its CUDA (13.0 there: keep cuda130 and
cpu), then `PYTHONPATH=that-folder:. python3 tools/gpu_check.py`. Results of one run: `data/results/gpu/gpu_check.jsonl`."""
import argparse, json, time, traceback
from pathlib import Path
import torch

def log(out, **kw):
    print(json.dumps(kw), flush=True)
    if out: (Path(out)/'gpu_check.jsonl').open('a').write(json.dumps(kw) + '\n')

def env(device):
    import bitsandbytes, transformers
    d = dict(check='env', torch=torch.__version__, transformers=transformers.__version__, bitsandbytes=bitsandbytes.__version__,
             device=device)
    if device.startswith('cuda'): d.update(gpu=torch.cuda.get_device_name(), capability=list(torch.cuda.get_device_capability()))
    return d

def student_checks(device, limit, tmp, out):
    "Save each student, load it twice (CPU, `device`) and compare logits on teacher states and decoded answers."
    from fair_calib_nb.models import load_dllm
    from fair_calib_nb.api import quantize
    from fair_calib_nb.student import load_student
    from fair_calib_nb.tasks import make_splits
    from fair_calib_nb.evaluate import decode_suites, score_suites, answer_agreement
    splits = make_splits(0)
    for model in ('tiny-llada', 'tiny-dream'):
        teacher = load_dllm(model)
        for scheme, method in (('W4A16', 'rtn'), ('W4A4', 'flatquant')):
            path = Path(tmp)/f'{model}-{scheme}-{method}'
            t0 = time.time()
            quantize(teacher, scheme, method, output_dir=path, n_calib=64, calib_fields=dict(epochs=2), progress=False)
            t_cal = time.time() - t0
            cpu, dev = load_student(path), load_student(path)
            dev.model.to(device)
            kinds = sorted({type(m).__name__ for m in dev.model.modules() if 'Linear' in type(m).__name__})
            x = next(iter(decode_suites(teacher, {'sort': splits['sort']}, limit=8, logprobs=True, progress=False).values())).trace.states()[:, 5]
            with torch.no_grad(): a, b = cpu.logits(x), dev.logits(x)
            rel = ((a - b).norm() / a.norm()).item()
            top1 = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
            ans_c = {s: g.answers for s, g in decode_suites(cpu, splits, limit=limit, progress=False).items()}
            t0 = time.time(); ans_d = {s: g.answers for s, g in decode_suites(dev, splits, limit=limit, progress=False).items()}
            t_dec = time.time() - t0
            log(out, check='student', model=model, scheme=scheme, method=method, linears=kinds, calibrate_s=round(t_cal, 1),
                logits_rel_diff=rel, top1_agree=top1, acc_cpu=score_suites(splits, 'test', ans_c, limit)['mean'],
                acc_device=score_suites(splits, 'test', ans_d, limit)['mean'], answers_agree=answer_agreement(ans_c, ans_d)['mean'],
                device_decode_s=round(t_dec, 2), problems=limit * len(splits))

def calibrate_checks(device, limit, tmp, out):
    "Stage I and II end to end with the teacher on `device`: `quantize` for fair (RTN and GPTQ weights), save, reload, score."
    from fair_calib_nb.models import load_dllm
    from fair_calib_nb.api import quantize
    from fair_calib_nb.student import load_student
    from fair_calib_nb.evaluate import task_accuracy
    for model in ('tiny-llada', 'tiny-dream'):
        teacher = load_dllm(model, device=device)
        for weights in ('rtn', 'gptq'):
            path = Path(tmp)/f'{model}-fair-{weights}'
            try:
                t0 = time.time()
                st = quantize(teacher, 'W4A4', 'fair', output_dir=path, weights=weights, n_calib=64, n_probe=32,
                              calib_fields=dict(epochs=2), progress=False)
                t_cal = time.time() - t0
                acc = task_accuracy(st, limit=limit, progress=False)['mean']
                back = load_student(path); back.model.to(device)
                log(out, check='calibrate', model=model, method='fair', weights=weights, device=str(teacher.device),
                    calibrate_s=round(t_cal, 1), acc=acc, acc_reloaded=task_accuracy(back, limit=limit, progress=False)['mean'],
                    acc_teacher=task_accuracy(teacher, limit=limit, progress=False)['mean'], problems=2 * limit)
            except Exception as e:
                log(out, check='calibrate', model=model, weights=weights, error=f'{type(e).__name__}: {e}',
                    where=traceback.format_exc().strip().split('\n')[-3:])

def dryrun_checks(device, sizes, out):
    from fair_calib_nb.calib import CalibConfig
    from fair_calib_nb.dryrun import dry_run
    for size in sizes:
        for weights in ('rtn', 'gptq'):
            t0 = time.time()
            try: r = dry_run(size, n_calib=256, steps=3, cfg=CalibConfig(method='flatquant', weights=weights), device=device)
            except Exception as e:   # report and go on: one failure should not hide the other checks
                log(out, check='dryrun', size=size, weights=weights, error=f'{type(e).__name__}: {e}',
                    where=traceback.format_exc().strip().split('\n')[-3:]); continue
            log(out, check='dryrun', wall_s=round(time.time() - t0, 1), **r)
            if device.startswith('cuda'): torch.cuda.empty_cache()

if __name__ == '__main__':
    import tempfile
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cuda'); ap.add_argument('--sizes', nargs='+', default=['llada-8b', 'dream-7b'])
    ap.add_argument('--limit', type=int, default=64); ap.add_argument('--out', default=None)
    ap.add_argument('--skip-students', action='store_true'); ap.add_argument('--skip-calibrate', action='store_true')
    a = ap.parse_args()
    if a.device.startswith('cuda') and not torch.cuda.is_available(): raise SystemExit('no CUDA device: run this on a GPU machine')
    if a.out: Path(a.out).mkdir(parents=True, exist_ok=True)
    log(a.out, **env(a.device))
    if not a.skip_students:
        with tempfile.TemporaryDirectory() as tmp: student_checks(a.device, a.limit, tmp, a.out)
    if not a.skip_calibrate:
        with tempfile.TemporaryDirectory() as tmp: calibrate_checks(a.device, a.limit, tmp, a.out)
    dryrun_checks(a.device, [s for s in a.sizes if s != 'none'], a.out)
