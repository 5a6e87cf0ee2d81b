"""The default `fair-calib` run, stage by stage: wall time and peak resident memory of the teacher evaluation, Stage I
(probing + priors), and each method's calibration and evaluation (target: the whole default run under 10 minutes on a
2-core CPU). Then Stage II alone, `fair` vs `flatquant` on identical settings, alternated over `--reps` rounds (target
ratio <= 1.05: the prior is only a loss weight).
Run alone (no other torch process): `python benchmarks/bench_pipeline.py [--threads 2] [--reps 3]`."""
import argparse, statistics, tempfile, time
from pathlib import Path
import torch
from transformers.utils import logging as hf_logging
from fair_calib_nb.pipeline import PipelineConfig, run_pipeline
from fair_calib_nb.calib import calibrate, prior_config
from fair_calib_nb.prior import build_prior
from fair_calib_nb.models import load_dllm
from fair_calib_nb.tasks import make_splits, calib_pairs
hf_logging.disable_progress_bar()

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--skip-pipeline', action='store_true')
    a = ap.parse_args(); torch.set_num_threads(a.threads)
    cfg = PipelineConfig()
    if not a.skip_pipeline:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time(); res = run_pipeline(cfg, Path(tmp)/'out', progress=False); wall = time.time() - t0
        print(f'default fair-calib run ({cfg.model}, {", ".join(cfg.methods)}, seed 0, {a.threads} threads): {wall:.0f} s in total\n')
        print('| stage | seconds | peak RSS (MB) |\n|---|---|---|')
        for k, v in res['timings'][0]['stages'].items(): print(f"| {k} | {v['seconds']:.1f} | {v['peak_rss_mb']:.0f} |")
        for r in res['runs']:
            e = r['times']['evaluate']; print(f"| {r['method']} evaluate | {e['seconds']:.1f} | {e['peak_rss_mb']:.0f} |")
    teacher = load_dllm(cfg.model); P, A = calib_pairs(make_splits(0), cfg.n_calib)
    prior = build_prior(teacher, P, prior_config('fair', cfg.prior_base(0)), progress=False)
    secs = {'flatquant': [], 'fair': []}
    for r in range(a.reps):
        for m in secs:
            t0 = time.time(); calibrate(teacher, P, A, cfg.calib_config(m, 0), prior=prior if m == 'fair' else None, progress=False)
            secs[m].append(time.time() - t0)
    med = {m: statistics.median(v) for m, v in secs.items()}
    print(f'\nStage II alone ({len(P)} sequences, {cfg.epochs} epochs), median of {a.reps} alternated rounds: '
          f"flatquant {med['flatquant']:.1f} s, fair {med['fair']:.1f} s, ratio fair/flatquant {med['fair'] / med['flatquant']:.3f}")
    print('all rounds:', {m: [round(x, 1) for x in v] for m, v in secs.items()})

if __name__ == '__main__': main()
