#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does, without Quarto).

Markdown cells are copied; code cells are shown with their stored outputs unless marked `#| hide`;
`#|` directive lines are dropped. Run from the repository root: `python tools/make_readme.py`."""
import json, sys
from pathlib import Path

def cell_src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def render(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    out = []
    for c in nb['cells']:
        src = cell_src(c); lines = src.splitlines()
        directives = [l[3:].strip() for l in lines if l.startswith('#|')]
        body = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        if c['cell_type'] == 'markdown': out.append(src.strip()); continue
        if c['cell_type'] != 'code' or 'hide' in directives or 'default_exp' in ' '.join(directives): continue
        if body and 'echo: false' not in directives: out.append(f'```python\n{body}\n```')
        for o in c.get('outputs', []):
            data = o.get('data', {})
            if 'text/markdown' in data: out.append(''.join(data['text/markdown']).strip())
            elif 'text/plain' in data: out.append('```\n' + ''.join(data['text/plain']).rstrip() + '\n```')
            elif o.get('output_type') == 'stream': out.append('```\n' + ''.join(o['text']).rstrip() + '\n```')
    return '\n\n'.join(x for x in out if x) + '\n'

if __name__ == '__main__':
    root = Path(__file__).resolve().parent.parent
    (root/'README.md').write_text(render(root/'nbs'/'index.ipynb'))
    print('wrote README.md', file=sys.stderr)
