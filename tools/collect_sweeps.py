"Copy the small outputs of finished sweeps (results.json, results.md, priors/) into data/results/sweeps/<dir>/."
import shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1] if len(sys.argv) > 1 else 'sweeps'), Path(__file__).resolve().parent.parent/'data'/'results'/'sweeps'
for d in sorted(p for p in src.iterdir() if (p/'results.json').exists()):
    (dst/d.name).mkdir(parents=True, exist_ok=True)
    for f in ('results.json', 'results.md'): shutil.copy(d/f, dst/d.name/f)
    if (d/'priors').exists(): shutil.copytree(d/'priors', dst/d.name/'priors', dirs_exist_ok=True)
    print(d.name, '->', dst/d.name)
