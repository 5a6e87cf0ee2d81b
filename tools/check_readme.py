#!/usr/bin/env python
"""Execute `nbs/index.ipynb` (the README's source) and check that it prints what the README shows.

The README is made from the notebook's stored outputs (`tools/make_readme.py`; `.ci/run` checks the two agree), so
this closes the loop: the numbers a reader sees come from an execution this check repeats. `tools/test.sh` runs it in
place of `nbdev_test` for `index` (the notebook is executed once). Every printed or displayed text output must equal
the stored one, line for line; figures and stderr (progress bars) are not compared.

One exception, stated in the notebook: a learned (calibrated) student depends on the CPU's float kernels (AVX2 and
AVX-512 sum in another order; the training amplifies it), so a cell whose source carries the marker `MARKER` is compared
only when this machine's environment line (printed by the notebook: versions, torch's CPU capability, threads) equals
the stored one; otherwise its differences are listed as a notice. Exit status 1 on any other difference.
Usage: `python tools/check_readme.py [--write]` (`--write` stores this execution's outputs, then run `nbdev_clean`)."""
import argparse, os, sys, time
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from run_notebooks import drop_plotly_init   # tools/ is this script's folder

ROOT = Path(__file__).resolve().parent.parent
NB = ROOT/'nbs'/'index.ipynb'
MARKER = '# learned student: depends on the CPU kernels'
ENV_PREFIX = 'printed with '

def texts(cell) -> list:
    "The text a reader sees of a code cell: stdout and plain/markdown results (no figures, no stderr)."
    out = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream':
            if o.get('name') == 'stdout': out.append(''.join(o['text']))
        else:
            d = o.get('data', {})
            if 'text/markdown' in d: out.append(''.join(d['text/markdown']))
            elif 'text/plain' in d and not any(k.startswith('application/') or k == 'text/html' for k in d): out.append(''.join(d['text/plain']))
    return [l.rstrip() for t in out for l in t.strip().splitlines()]

def env_line(nb) -> str:
    return next((l for c in nb.cells if c.cell_type == 'code' for l in texts(c) if l.startswith(ENV_PREFIX)), None)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--write', action='store_true', help="store this execution's outputs in the notebook")
    a = ap.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    stored, nb = read_nb(NB), read_nb(NB)
    t = time.time()
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    with working_directory(NB.parent): CaptureShell(NB).run_all(nb, exc_stop=True)
    print(f'index.ipynb executed in {time.time()-t:.0f} s', file=sys.stderr)
    same_env = env_line(stored) == env_line(nb)
    if not same_env: print(f'check_readme: environment differs from the stored run:\n  stored: {env_line(stored)}\n  here:   '
                           f'{env_line(nb)}\n  cells marked {MARKER!r} are listed, not failed', file=sys.stderr)
    bad, notices = [], []
    for i, (s, c) in enumerate(zip(stored.cells, nb.cells)):
        if c.cell_type != 'code' or texts(s) == texts(c) or texts(c)[:1] and texts(c)[0].startswith(ENV_PREFIX): continue
        (bad if same_env or MARKER not in c.source else notices).append((i, texts(s), texts(c)))
    for kind, rows in (('NOTICE (learned student, other CPU kernels)', notices), ('DIFFERS', bad)):
        for i, old, new in rows: print(f'{kind}: cell {i}\n  README: {old}\n  now:    {new}', file=sys.stderr)
    if a.write:
        drop_plotly_init(nb); write_nb(nb, NB); print('stored the outputs: run nbdev_clean and tools/make_readme.py', file=sys.stderr); return 0
    if bad: print(f'check_readme: {len(bad)} cell(s) of nbs/index.ipynb print something else than the README shows', file=sys.stderr)
    return 1 if bad else 0

if __name__ == '__main__': sys.exit(main())
