#!/usr/bin/env python
"""The experiments behind notebook 30_results and the README, scripted and resumable (each run directory is a
`fair-calib run` output, continued with --resume if it exists). Run one experiment at a time, alone on the machine:

    python tools/protocol.py default           # the default `fair-calib` run on each model (W4A4: rtn, quarot, flatquant, fair; seed 0)
    python tools/protocol.py foundation        # RTN W4A16 / W4A8 / W4A4 and the FP teacher (first 200 test problems per suite)
    python tools/protocol.py gptq              # rtn vs gptq weights for rtn, quarot, flatquant, fair at W4A16 and W4A4, seeds 0-2
    python tools/protocol.py gptq --models tiny-llada --methods rtn flatquant --schemes W4A4   # a reduced part of it
    python tools/protocol.py noise             # flatquant's seed and thread spread, settings screened to lower it, QuaRot (val)
    python tools/protocol.py val               # the prior methods and their controls on the validation split, seeds 0-3
    python tools/protocol.py select-setting    # the calibration setting for val, from the noise screen (rule in `select_setting`)
    python tools/protocol.py select --out data/results   # the validated best prior and shipped default (rule in `select`)
    python tools/protocol.py ablation --models tiny-dream --only s01   # the paper's ablation, one prior term at a time (val, seeds 0-1)
    python tools/protocol.py ablation --tables --out data/results      # ... beside val's fair and its control (ablation/ablation.md)
    python tools/protocol.py confirm           # val/selection.json's prior (or --best M) vs its control, its null, QuaRot; test, seeds 0-7
    python tools/protocol.py verdict --out data/results   # the confirmation's paired differences and the target, per model (confirm/verdict.md)
    python tools/protocol.py collect           # copy results.json / results.md of finished runs into data/results/ (--only gptq/ noise/)

Stage II's convergence (held-out block loss per epoch, what moves it, the `converge` recipe) has its own script:
`python tools/converge.py --list` (notebook 23_converge).

Options: --models, --out (default runs/), --threads (default 2), --dry (print the commands only), --methods / --seeds /
--schemes / --weights / --only (a reduced run)."""
import argparse, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ['tiny-llada', 'tiny-dream']
NOISE_CHOICE = dict(n_calib=256, epochs=16, calib=['lr=1e-3'])
VAL_SETTING = []   # the calibration arguments `select-setting` chose for val and confirm ([]: the defaults)
NOISE_SCREEN = {'e2': ['--epochs', '2'], 'clip1': ['--calib', 'clip_lr_mult=1']}

def experiments(models, methods=None, seeds=None):
    "`{name: [(run dir, fair-calib run arguments)]}`; `methods` / `seeds` replace an experiment's own lists (a reduced run)."
    ex = {'default': [(f'default/{m}', ['--model', m]) for m in models]}   # `fair-calib --model M`: rtn, quarot, flatquant, fair at W4A4, seed 0
    ex['foundation'] = [(f'foundation/{m}-{s}', ['--model', m, '--methods', 'rtn', '--scheme', s]) for m in models for s in ('W4A16', 'W4A8', 'W4A4')]
    four = ['--methods', *(methods or ['rtn', 'quarot', 'flatquant', 'fair']), '--seeds', *(seeds or ['0', '1', '2'])]
    ex['gptq'] = [(f'gptq/{m}-{s}-{w}', ['--model', m, '--scheme', s, '--weights', w] + four)
                  for m in models for s in ('W4A16', 'W4A4') for w in ('rtn', 'gptq')]
    val = ['--eval-split', 'val', '--limit', '256', '--n-lag', '0']
    ex['noise'] = ([(f'noise/{m}-base-t{t}', ['--model', m, '--methods', 'flatquant', '--seeds', '0', '1', '2', '3', '--threads', str(t)] + val)
                    for m in models for t in (1, 2)] +
                   [(f'noise/{m}-low-t{t}', ['--model', m, '--methods', 'flatquant', '--seeds', '0', '1', '2', '3', '--threads', str(t),
                     '--n-calib', str(NOISE_CHOICE['n_calib']), '--epochs', str(NOISE_CHOICE['epochs']), '--calib', *NOISE_CHOICE['calib']] + val)
                    for m in models for t in (1, 2)] +
                   # settings that keep FlatQuant nearer its Hadamard start (QuaRot, deterministic, beats its mean at
                   # W4A4): fewer epochs, or clips learning at the transforms' rate; QuaRot itself as the reference
                   [(f'noise/{m}-{name}-t1', ['--model', m, '--methods', 'flatquant', '--seeds', '0', '1', '2', '3', '--threads', '1', *extra] + val)
                    for m in models for name, extra in NOISE_SCREEN.items()] +
                   [(f'noise/{m}-quarot-t1', ['--model', m, '--methods', 'quarot', '--seeds', '0', '--threads', '1'] + val) for m in models])
    # val: the candidate priors beside their uniform-weight controls (same prompt floor, same calibration data); the
    # permuted nulls belong to the confirmation. Default calibration settings: the lower-noise ones did not narrow the
    # seed spread (noise experiment) and cost 4.7x the calibration time.
    arms = ['flatquant[prompt_floor=0.1]', 'fair', 'fair_deployed', 'fair_fragility',
            'flatquant[data=\'states\',prompt_floor=0.1]', 'decision']
    ex['val'] = [(f'val/{m}', ['--model', m, '--methods', *arms, '--seeds', '0', '1', '2', '3'] + val + VAL_SETTING) for m in models]
    # the paper's Dream ablation (one prior term at a time) on val's problems and seeds, read beside val's `fair` and its
    # control by `ablation`; two directories per model (seeds 0-1, 2-3) so that two one-thread lanes can share the work
    ex['ablation'] = [(f'ablation/{m}-s{a}{b}', ['--model', m, '--methods', *ABLATION, '--seeds', a, b] + val + VAL_SETTING)
                      for m in models for a, b in (('0', '1'), ('2', '3'))]
    return ex

ABLATION = ['frontier_only', 'reliability_only']

def _rows(d:Path) -> list:
    "The per-student rows of a run directory: its `results.json`, else (a run still going) its finished students."
    import json
    if (d/'results.json').exists(): return json.loads((d/'results.json').read_text())['runs']
    return [json.loads(f.read_text()) for f in sorted((d/'runs').glob('*.json'))] if (d/'runs').exists() else []

def ablation(out:Path, models) -> str:
    """The paper's ablation beside ours: `fair` (both prior terms), each term alone and uniform weights (the control,
    same prompt floor), paired on the validation split's seeds; written to `ablation/ablation.md`."""
    from fair_calib_nb.report import summarize, paired_table
    ctrl = CANDIDATES['fair']; md = ['# The prior\'s terms one at a time (validation split)\n',
          'The paper (Dream-7B-Base, W4A4, mean over 10 benchmarks): both terms 64.64, frontier only 63.12, reliability only '
          '62.89, uniform 61.76. Ours: each arm minus the uniform-weight control with the same prompt floor, '
          'mean [95% bootstrap interval over seeds] (seeds better).\n']
    for m in models:
        rows = [r for d in [out/'val'/m, *sorted((out/'ablation').glob(f'{m}-s*'))] for r in _rows(d) if r['method'] in ('fair', ctrl, *ABLATION)]
        sm = summarize(rows)
        if not all(k in sm for k in ('fair', ctrl, *ABLATION)): md.append(f'## {m}\n\nnot measured yet\n'); continue
        md += [f'## {m}\n', paired_table(sm, [('fair', ctrl), *((a, ctrl) for a in ABLATION), *(('fair', a) for a in ABLATION)]), '']
    text = '\n'.join(md); (out/'ablation').mkdir(parents=True, exist_ok=True); (out/'ablation'/'ablation.md').write_text(text)
    print(text); return text

def null_of(method:str) -> str:
    "The permuted-prior null of a prior method: the same arm with `permute=True`."
    return f'{method}[permute=True]' if '[' not in method else method.replace(']', ',permute=True]')

def confirm_runs(models, best:str, control:str):
    "The confirmation: the validated best prior, its same-floor control, its permuted null and QuaRot; 8 seeds, whole test split."
    null = null_of(best)
    return [(f'confirm/{m}', ['--model', m, '--methods', 'quarot', control, best, null, '--seeds', *map(str, range(8)), '--limit', '0'] + VAL_SETTING)
            for m in models]

# Each val candidate and its uniform-weight control: the same prompt floor and calibration data, one thing changed.
CANDIDATES = {'fair': 'flatquant[prompt_floor=0.1]', 'fair_deployed': 'flatquant[prompt_floor=0.1]',
              'fair_fragility': 'flatquant[prompt_floor=0.1]', 'decision': "flatquant[data='states',prompt_floor=0.1]"}

def select_setting(out:Path, models) -> list:
    """The calibration setting for `val`, by a rule fixed before the screen ran: a screened setting (`NOISE_SCREEN`)
    replaces the default (`base`, one thread) when its seed standard deviation of mean accuracy is lower on every model
    and its mean accuracy is at most 1 point lower on any model; of several, the lowest std averaged over the models."""
    import json, statistics
    def stats(m, name):
        f = out/'noise'/f'{m}-{name}-t1'/'results.json'
        if not f.exists(): return None
        v = json.loads(f.read_text())['summary']['flatquant']['acc_mean']; return v['mean'], v['std']
    base = {m: stats(m, 'base') for m in models}; ok, lines = {}, []
    for name in NOISE_SCREEN:
        st = {m: stats(m, name) for m in models}
        if None in st.values() or None in base.values(): lines.append(f'{name}: not measured on every model'); print(lines[-1]); continue
        lines.append(f"{name}: " + '; '.join(f"{m} mean {100*st[m][0]:.1f} (base {100*base[m][0]:.1f}), "
                                             f"std {100*st[m][1]:.1f} (base {100*base[m][1]:.1f})" for m in models)); print(lines[-1])
        if all(st[m][1] < base[m][1] and st[m][0] >= base[m][0] - 0.01 for m in models): ok[name] = statistics.fmean(st[m][1] for m in models)
    best = min(ok, key=ok.get) if ok else None
    lines.append(f"val setting: {best or 'base (the default)'}"); print(lines[-1])
    (out/'noise'/'setting.txt').write_text('\n'.join(lines) + '\n')
    return NOISE_SCREEN[best] if best else []

def select(out:Path, models):
    """The selection rule, fixed before the validation runs: per model, the paired (same-seed) differences candidate -
    control in mean accuracy and answer flip rate. A candidate is eligible when its mean flip difference is <= 0 on every
    model; the best is the eligible one with the largest accuracy difference averaged over the models. With none eligible,
    the largest accuracy difference is taken anyway and the rule says so (the confirmation still runs, and will report it).
    The shipped default is then whichever of the selected prior and QuaRot (its validation run in the noise experiment,
    same problems) has the higher mean accuracy averaged over the models; the confirmation measures both."""
    from fair_calib_nb.report import paired, paired_table
    import json, statistics
    res = {m: json.loads((out/'val'/m/'results.json').read_text())['summary'] for m in models}
    score = {}
    for cand, ctrl in CANDIDATES.items():
        acc, flip = [], []
        for m in models:
            a, f = paired(res[m], 'acc_mean', cand, ctrl), paired(res[m], 'flip_rate_answer', cand, ctrl)
            acc.append(a['mean']); flip.append(f['mean'])
            print(f"{m:11s} {cand:15s} - {ctrl:42s} acc {100*a['mean']:+6.2f} [{100*a['ci95'][0]:+.2f}, {100*a['ci95'][1]:+.2f}] "
                  f"({a['better']}/{a['n']})  flips {100*f['mean']:+6.3f} [{100*f['ci95'][0]:+.3f}, {100*f['ci95'][1]:+.3f}] "
                  f"({f['better']}/{f['n']})")
        score[cand] = (all(x <= 0 for x in flip), statistics.fmean(acc))
    ok = [c for c in score if score[c][0]]
    best = max(ok or score, key=lambda c: score[c][1])
    line = (f"selected: `{best}` (control `{CANDIDATES[best]}`); mean accuracy difference {100*score[best][1]:+.2f} points"
            + ('' if ok else '; no candidate lowered flips on every model, so none is eligible: taken by accuracy alone'))
    q = {m: json.loads((out/'noise'/f'{m}-quarot-t1'/'results.json').read_text())['summary']['quarot']['acc_mean']['mean'] for m in models}
    b = statistics.fmean(res[m][best]['acc_mean']['mean'] for m in models)
    default = best if b >= statistics.fmean(q.values()) else 'quarot'
    line += (f"\n\nshipped default: `{default}` (mean validation accuracy over the models: {best} {100*b:.1f}, "
             f"quarot {100*statistics.fmean(q.values()):.1f})")
    print('\n' + line)
    md = [f'# The validation split\'s choice\n\nRule (`tools/protocol.py select`, fixed before the runs): {" ".join(select.__doc__.split())}\n']
    for m in models:
        md += [f'## {m}: candidate - control (mean [95% bootstrap interval over seeds] (seeds better))\n',
               paired_table(res[m], list(CANDIDATES.items())), '']
    (out/'val'/'selection.md').write_text('\n'.join(md + [line, '']))
    (out/'val'/'selection.json').write_text(json.dumps(dict(best=best, control=CANDIDATES[best], default=default), indent=1) + '\n')
    return best, CANDIDATES[best]

def _constant(entry:dict, seeds:list) -> dict:
    "A deterministic method's single-run summary entry repeated over `seeds` (QuaRot learns nothing: one run stands for every seed)."
    return {k: dict(v, seeds=list(seeds), values=[v['values'][0]] * len(seeds), n=len(seeds)) for k, v in entry.items()}

TARGET = ('on each model, the shipped default beats the control on answer flip rate with the 95% interval below zero and on mean '
          'accuracy, beats the permuted-prior null (lower mean flip rate and higher mean accuracy), and closes at least half of '
          "the control's accuracy gap to FP (QuaRot, deterministic, counts its one run for every seed).")

def _confirm_summary(d:Path):
    "Summary and FP accuracy of a confirmation run, finished or (read from its finished students) still going."
    import json
    from fair_calib_nb.report import summarize
    rows, res, tj = _rows(d), d/'results.json', d/'teacher.json'
    if res.exists(): fp = json.loads(res.read_text())['teacher']['metrics']['acc_mean']
    elif rows and tj.exists(): fp = json.loads(tj.read_text())['metrics']['acc_mean']
    else: return None, None
    return summarize(rows), fp

def verdict(out:Path, models, sel:dict, n_seeds:int=8) -> str:
    "The confirmation's paired differences per model and `TARGET`, checked for the shipped default; partial runs (< `n_seeds`) say so."
    from fair_calib_nb.report import paired, paired_table
    best, control, default = sel['best'], sel['control'], sel['default']; null = null_of(best)
    md = [f"# The confirmation (test split)\n\nValidated choice `{best}`, control `{control}`, null `{null}`, shipped default "
          f"`{default}`. Target: {TARGET}\n"]
    for m in models:
        sm, fp = _confirm_summary(out/'confirm'/m)
        if sm is None: md.append(f'## {m}\n\nnot measured yet\n'); continue
        if control not in sm: md.append(f'## {m}\n\nthe control has not run yet\n'); continue
        seeds = sm[control]['acc_mean']['seeds']
        if 'quarot' in sm: sm['quarot'] = _constant(sm['quarot'], seeds)
        pairs = [p for p in [(best, control), (best, null), ('quarot', control), ('quarot', null)] if p[0] in sm and p[1] in sm]
        part = f' (partial: {len(seeds)} of {n_seeds} seeds)' if len(seeds) < n_seeds else ''
        md += [f'## {m}{part}: method - control, mean [95% bootstrap interval over seeds] (seeds better)\n',
               paired_table(sm, pairs), '']
        if default not in sm or len(seeds) < 2: continue
        fl, ac = paired(sm, 'flip_rate_answer', default, control), paired(sm, 'acc_mean', default, control)
        gap = (fp - sm[control]['acc_mean']['mean']); closed = ac['mean'] / gap if gap > 0 else float('nan')
        checks = [(f"flips below the control, interval excluding zero: {100*fl['mean']:+.3f} [{100*fl['ci95'][0]:+.3f}, "
                   f"{100*fl['ci95'][1]:+.3f}] points", fl['ci95'][1] < 0),
                  (f"accuracy above the control: {100*ac['mean']:+.2f} points", ac['mean'] > 0),
                  (f"half of the control's gap to FP ({100*fp:.1f}) closed: {100*closed:.0f}%", closed >= 0.5)]
        if null in sm:
            nf, na = paired(sm, 'flip_rate_answer', default, null), paired(sm, 'acc_mean', default, null)
            checks.append((f"beats the null: flips {100*nf['mean']:+.3f}, accuracy {100*na['mean']:+.2f} points", nf['mean'] < 0 and na['mean'] > 0))
        md += [f'Target for `{default}` on {m}{part}:\n'] + [f"- {'met' if ok else 'NOT met'}: {t}" for t, ok in checks] + ['']
    text = '\n'.join(md); (out/'confirm').mkdir(parents=True, exist_ok=True); (out/'confirm'/'verdict.md').write_text(text)
    print(text); return text

def selection(out:Path) -> dict:
    "The validation split's choice written by `select` (`val/selection.json`)."
    import json
    f = out/'val'/'selection.json'
    if not f.exists(): sys.exit(f'{f} not found: run `python tools/protocol.py select --out {out}` first')
    return json.loads(f.read_text())

def run(rundir:Path, args:list, threads:int, dry:bool):
    cmd = [sys.executable, '-m', 'fair_calib_nb', '--quiet'] + (['--threads', str(threads)] if '--threads' not in args else []) + \
          ['run', *args, '--out', str(rundir)] + (['--resume'] if rundir.exists() else [])
    if '--threads' in args:   # global option: move it before the subcommand
        i = cmd.index('--threads', cmd.index('run')); cmd[i:i + 2] = []; cmd[3:3] = ['--threads', args[args.index('--threads') + 1]]
    print(' '.join(cmd), flush=True)
    if not dry: subprocess.run(cmd, check=True)

def collect(out:Path, only=None):
    dst = ROOT/'data'/'results'
    for d in sorted(p.parent for p in out.rglob('results.json')):
        rel = d.relative_to(out)
        if only and not any(o in str(rel) for o in only): continue
        (dst/rel).mkdir(parents=True, exist_ok=True)
        for f in ('results.json', 'results.md', 'timings.json'): shutil.copy(d/f, dst/rel/f)
        if (d/'priors').exists(): shutil.copytree(d/'priors', dst/rel/'priors', dirs_exist_ok=True)
        print(rel, '->', dst/rel)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('experiment', choices=['default', 'foundation', 'gptq', 'noise', 'val', 'ablation', 'select-setting', 'select',
                                           'confirm', 'verdict', 'collect'])
    ap.add_argument('--models', nargs='+', default=MODELS); ap.add_argument('--out', default='runs')
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--dry', action='store_true')
    ap.add_argument('--methods', nargs='+', default=None, help='gptq: only these methods (a reduced run; --resume adds the rest later)')
    ap.add_argument('--seeds', nargs='+', default=None, help='gptq: only these seeds')
    ap.add_argument('--schemes', nargs='+', default=None, help='only the runs of these schemes (W4A16, W4A8, W4A4)')
    ap.add_argument('--weights', nargs='+', default=None, help='only the runs with these weight roundings (rtn, gptq)')
    ap.add_argument('--only', nargs='+', default=None, help='only the run directories whose name contains one of these (e.g. -t1)')
    ap.add_argument('--best', default=None, help='confirm: the method chosen on the validation split (default: SELECTION/val/selection.json)')
    ap.add_argument('--selection', default=str(ROOT/'data'/'results'), help='confirm, verdict: where `select` wrote val/selection.json')
    ap.add_argument('--tables', action='store_true', help='ablation: write the paired tables from finished runs instead of running')
    ap.add_argument('--control', default=None, help='confirm: its uniform-weight control (default: the candidate\'s, `CANDIDATES`)')
    a = ap.parse_args(); out = Path(a.out)
    if a.experiment == 'collect': collect(out, a.only); sys.exit()
    if a.experiment == 'select': select(out, a.models); sys.exit()
    if a.experiment == 'select-setting': select_setting(out, a.models); sys.exit()
    if a.experiment == 'ablation' and a.tables: ablation(out, a.models); sys.exit()
    if a.experiment == 'verdict': verdict(out, a.models, selection(Path(a.selection))); sys.exit()
    if a.experiment == 'confirm':
        if not a.best: a.best = selection(Path(a.selection))['best']
        control = a.control or CANDIDATES.get(a.best.split('[')[0])
        if not control: sys.exit(f'confirm: no control known for {a.best!r}; pass --control')
        todo = confirm_runs(a.models, a.best, control)
    else: todo = experiments(a.models, a.methods, a.seeds)[a.experiment]
    if a.schemes: todo = [(d, x) for d, x in todo if '--scheme' not in x or x[x.index('--scheme') + 1] in a.schemes]
    if a.weights: todo = [(d, x) for d, x in todo if '--weights' not in x or x[x.index('--weights') + 1] in a.weights]
    if a.only: todo = [(d, x) for d, x in todo if any(o in d for o in a.only)]
    for d, args in todo: run(out/d, args, a.threads, a.dry)
