#!/usr/bin/env python
"""Execute notebooks in place and store their outputs (for the docs site and readers), skipping `#| eval: false` cells
the way `nbdev_test` does. Usage: `python tools/run_notebooks.py [nbs/03_decode.ipynb ...]` (default: every notebook),
then `nbdev_clean`. Set OMP_NUM_THREADS=1 when other work shares the cores."""
import re, sys, time
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory

def skip(cell):
    if cell.cell_type != 'code': return True
    return bool(re.search(r'^#\|\s*eval:\s*false', cell.source, re.M))

def drop_plotly_init(nb):
    "Drop plotly's one-off notebook init output (a 5 MB copy of plotly.js that names CDNs); figures carry their own JSON."
    for c in nb.cells:
        if c.cell_type == 'code':
            c.outputs = [o for o in c.outputs if not (set(o.get('data', {})) == {'text/html'} and 'plotly.js v' in ''.join(o['data']['text/html']))]

def run(path:Path):
    nb = read_nb(path); t = time.time()
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    k = CaptureShell(path)
    with working_directory(path.parent): k.run_all(nb, exc_stop=True, preproc=skip)
    drop_plotly_init(nb); write_nb(nb, path); print(f'{path.name}: {time.time()-t:.0f}s', flush=True)

if __name__ == '__main__':
    root = Path(__file__).resolve().parent.parent
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted((root/'nbs').glob('*.ipynb'))
    for p in paths: run(p)
