#!/usr/bin/env python
"""Build the docs site into `_docs/` from the notebooks, offline: `python tools/build_docs.py`.

Quarto (what `nbdev_docs` needs) cannot be installed here, so the site is made in three steps:

1. nbdev's own notebook processing (`nbdev.serve.proc_nbs`, the core of `nbdev_proc_nbs`) writes processed
   notebooks to `_proc/`: frontmatter from `# Title` / `> summary`, `show_doc` API docs, hidden and exported
   cells removed, backtick names linked. One change: nbdev would re-run every cell that contains an import;
   here only exported cells, `show_doc` cells and the import statements themselves run, so the stored
   outputs are what the site shows and no notebook is executed.
2. Each processed notebook is staged for MkDocs under `_proc/_mkdocs/docs/`: Quarto directives the
   notebook renderer does not know are applied (`echo: false`, `output: false`, `include: false`),
   `$...$` math becomes MathML (no MathJax to fetch), plotly outputs become HTML that calls the plotly.js
   copied once from the installed `plotly` package, ipywidgets outputs (they need a kernel) are dropped,
   and links to the doc host become relative.
3. MkDocs Material + mkdocs-jupyter build `_docs/` (navigation in notebook order: index, 00_, 01_, ...;
   search on; no Google fonts, no CDN), then every page is checked for references to other hosts.

If `quarto` is on PATH the script just runs `nbdev_docs` instead (`--engine mkdocs` forces the MkDocs build).
Options: `--nbs DIR` takes the notebooks from DIR instead of settings.ini's nbs_path (e.g. executed copies),
`--serve PORT` serves `_docs/` on 127.0.0.1 after building.
"""
from __future__ import annotations
import argparse, ast, copy, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT/'_proc'/'_mkdocs'          # generated mkdocs.yml + docs_dir (inside git-ignored _proc/)
PLOTLY_JS = 'assets/plotly/plotly.min.js'  # where the site keeps plotly.js, relative to the site root
WORKER_SHIM = 'assets/javascripts/iframe-worker-shim.js'   # our file:// search-worker shim (the offline plugin's is on unpkg.com)
WIDGET_NOTE = ('<p class="nb-widget-note"><em>Interactive ipywidgets output: it needs a running kernel, so it is not '
               'shown here. Open this notebook in JupyterLab to use it.</em></p>')

# ---------------------------------------------------------------- 1. nbdev processing
def nbdev_process(nbs: Path) -> Path:
    "Run nbdev's docs processing of `nbs` into `_proc/`, executing only what `show_doc` needs."
    import nbdev.serve
    from nbdev.processors import FilterDefaults, exec_show_docs, _do_eval, _show_docs

    class exec_show_docs_only(exec_show_docs):
        """Like nbdev's `exec_show_docs`, but a cell that mixes imports with other code only runs its imports, and an
        exported cell takes its names from the exported module when it holds them all: every notebook is processed in
        this one process, and defining an exported class a second time (the notebook's copy in `__main__` beside the
        module's) breaks process-wide registries, e.g. lm-eval's model registry when a later notebook imports the module."""
        def begin(self):
            super().begin()
            self.default_exp = next((c.directives_['default_exp'][0] for c in self.nb.cells
                                     if c.cell_type == 'code' and c.directives_.get('default_exp')), None)

        def from_module(self, cell, trees) -> bool:
            "Bring an exported cell's imports and names in from its module (True), or leave it to be executed (False)."
            import importlib
            from nbdev.config import get_config
            kind = next((k for k in ('export', 'exports', 'exporti') if k in cell.directives_), None)
            mod = kind and ((cell.directives_[kind] or [None])[0] or self.default_exp)
            if not mod: return False
            names = []
            for n in trees:
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.append(n.name)
                elif isinstance(n, (ast.Assign, ast.AnnAssign)):
                    for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                        for e in (t.elts if isinstance(t, ast.Tuple) else [t]):
                            if not isinstance(e, ast.Name): return False
                            names.append(e.id)
                elif not isinstance(n, (ast.Import, ast.ImportFrom, ast.Expr)) or (isinstance(n, ast.Expr) and not isinstance(n.value, ast.Constant)):
                    return False
            try: m = importlib.import_module(f'{get_config().lib_path.name}.{mod}')
            except Exception: return False
            if not names or not all(hasattr(m, x) for x in names): return False
            imps = [n for n in trees if isinstance(n, (ast.Import, ast.ImportFrom))]
            if imps: self.k.run(ast.unparse(ast.Module(body=imps, type_ignores=[])))
            self.k.run(f'from {m.__name__} import {", ".join(dict.fromkeys(names))}')
            return True

        def __call__(self, cell):
            if not self.nb.has_docs_ or not hasattr(self, 'k'): return
            fm = getattr(self.nb, 'frontmatter_', {})
            if str(fm.get('skip_showdoc', '')).lower() in ('true', '1', 'yes'): return
            if not _do_eval(cell): return
            title = fm.get('title', '')
            trees = cell.parsed_()
            if cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'} or _show_docs(trees):
                if not self.from_module(cell, trees): self.k.cell(cell)
            else:  # imports (plus maybe other code): bring the names in, keep the stored outputs
                imps = [n for n in trees if isinstance(n, (ast.Import, ast.ImportFrom))]
                if imps: self.k.run(ast.unparse(ast.Module(body=imps, type_ignores=[])))
            if self.k.exc:
                raise Exception(f"nbdev docs processing failed in notebook {title!r}, cell {cell.idx_}:\n{cell.source}") from self.k.exc

    class Procs(FilterDefaults):
        def base_procs(self): return [exec_show_docs_only if p is exec_show_docs else p for p in super().base_procs()]

    nbdev.serve.FilterDefaults = Procs       # proc_nbs hands this class to each notebook
    import warnings
    with warnings.catch_warnings():          # nbdev's 'cells containing imports and other code' advice: we only run the imports
        warnings.filterwarnings('ignore', message='Found cells containing imports')
        return nbdev.serve.proc_nbs(str(nbs), n_workers=0, force=True)  # serial, in this process: no extra CPU

# ---------------------------------------------------------------- 2. staging for mkdocs-jupyter
def src(o): return ''.join(o) if isinstance(o, list) else (o or '')

def directives(cell) -> tuple[dict, str]:
    "Quarto `#| key: value` lines of a code cell and the source without them."
    d, body = {}, []
    for line in src(cell.get('source')).splitlines():
        m = re.match(r'\s*#\|\s*([\w-]+)\s*:?\s*(.*)$', line)
        if m: d[m.group(1).lower()] = m.group(2).strip().lower()
        else: body.append(line)
    return d, '\n'.join(body).strip('\n')

def tex2mathml(md: str) -> str:
    "Replace `$$...$$` and `$...$` (outside code) by MathML, which Chromium/Firefox render without scripts."
    from latex2mathml.converter import convert
    def conv(tex, display):
        try: return convert(tex.strip(), display='block' if display else 'inline')
        except Exception: return None
    out = []
    for i, part in enumerate(re.split(r'(```.*?```|`[^`\n]*`)', md, flags=re.S)):
        if i % 2: out.append(part); continue
        part = re.sub(r'\$\$(.+?)\$\$', lambda m: conv(m.group(1), True) or m.group(0), part, flags=re.S)
        part = re.sub(r'(?<![\\$])\$(?!\s)([^$\n]+?)(?<![\s\\])\$(?!\$)', lambda m: conv(m.group(1), False) or m.group(0), part)
        out.append(part)
    return ''.join(out)

def pandoc_links(md: str) -> str:
    "Pandoc's `[text](url){k=\"v\" ...}` (show_doc's source links) as an HTML link the notebook renderer keeps."
    def a(m):
        attrs = m.group(3).strip()
        ok = re.fullmatch(r'(\s*[\w-]+="[^"]*")*', attrs)
        return f'<a href="{m.group(2)}"{" " + attrs if ok and attrs else ""}>{m.group(1)}</a>'
    return re.sub(r'\[([^\]]*)\]\(([^)\s]+)\)\{([^}]*)\}', a, md)

def plotly_html(fig: dict, first: bool, up: str = '') -> str:
    """A stored plotly figure as HTML using the site's local plotly.js (loaded by the first figure of a page), with the
    project's shared layout (`fair_calib_nb.viz.tidy`: the title below the toolbar) applied to figures of every notebook."""
    import plotly.io as pio, plotly.graph_objects as go
    from fair_calib_nb.viz import tidy
    fig = tidy(go.Figure(fig, skip_invalid=True))
    html = pio.to_html(fig, include_plotlyjs=False, full_html=False, auto_play=False, validate=False,
                       default_width='100%', default_height='450px', config={'displaylogo': False, 'responsive': True})
    return (f'<script src="{up}{PLOTLY_JS}"></script>\n' if first else '') + html

def stage_notebook(nb: dict, host: str, up: str = '') -> tuple[dict, bool]:
    "Quarto directives, MathML, plotly and widgets applied to a processed notebook (`up`: path to the site root); `(nb, plotly figures)`."
    nb = copy.deepcopy(nb)
    nb['metadata'].pop('widgets', None)   # no widget state: nothing for an embed manager (from a CDN) to render
    nb['metadata'].setdefault('kernelspec', {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'})
    cells, n_plotly = [], 0
    for c in nb['cells']:
        if c['cell_type'] == 'raw':
            fm = src(c['source']).strip()
            if fm.startswith('---'):   # nbdev frontmatter: title + description become the page head
                import yaml
                meta = yaml.safe_load(fm.strip('-\n')) or {}
                if meta.get('title'):
                    head = f"# {meta['title']}" + (f"\n\n> {meta['description']}" if meta.get('description') else '')
                    cells.append({'cell_type': 'markdown', 'metadata': {}, 'source': head})
            continue
        if c['cell_type'] == 'markdown':
            c['source'] = tex2mathml(src(c['source']).replace(host, up))
            cells.append(c); continue
        if c['cell_type'] != 'code': continue
        d, body = directives(c)
        if d.get('include') == 'false': continue
        c['source'] = body
        tags = c.setdefault('metadata', {}).setdefault('tags', [])
        if d.get('echo') == 'false' or not body.strip(): tags.append('hide-input')
        outs = [] if d.get('output') == 'false' else c.get('outputs', [])
        new = []
        for o in outs:
            data = o.get('data', {})
            if 'application/vnd.jupyter.widget-view+json' in data:
                if o.get('output_type') == 'execute_result':
                    new.append({'output_type': 'display_data', 'metadata': {}, 'data': {'text/html': WIDGET_NOTE}})
                continue
            if 'application/vnd.plotly.v1+json' in data:
                n_plotly += 1
                new.append({'output_type': 'display_data', 'metadata': {},
                            'data': {'text/html': plotly_html(data['application/vnd.plotly.v1+json'], n_plotly == 1, up)}})
                continue
            if 'text/markdown' in data: data['text/markdown'] = pandoc_links(src(data['text/markdown']).replace(host, up))
            new.append(o)
        c['outputs'] = new
        if not body.strip() and not new: continue
        cells.append(c)
    nb['cells'] = cells
    return nb, n_plotly

def notebook_order(paths):
    "index first, then by name (00_, 01_, ... 90_)."
    return sorted(paths, key=lambda p: (p.stem != 'index', str(p)))

def stage(proc: Path, cfg) -> list[dict]:
    "Stage `_proc/` into `STAGE/docs`; returns the pages in navigation order."
    docs = STAGE/'docs'
    if STAGE.exists(): shutil.rmtree(STAGE)
    docs.mkdir(parents=True)
    host = cfg.get('doc_host', '').rstrip('/') + '/' + cfg.get('doc_baseurl', '/').strip('/')
    host = host.rstrip('/') + '/'
    pages = []
    for p in notebook_order([p for p in proc.rglob('*.ipynb') if STAGE not in p.parents]):
        rel = p.relative_to(proc)
        nb = json.loads(p.read_text())
        fm = next((src(c['source']) for c in nb['cells'] if c['cell_type'] == 'raw' and src(c['source']).lstrip().startswith('---')), '')
        m = re.search(r'^output-file:\s*(\S+)\.html\s*$', fm, re.M)
        t = re.search(r'^title:\s*(.+)$', fm, re.M)
        out = rel.with_name((m.group(1) if m else rel.stem) + '.ipynb')
        staged, n_fig = stage_notebook(nb, host, '../' * (len(out.parts) - 1))
        (docs/out).parent.mkdir(parents=True, exist_ok=True)
        (docs/out).write_text(json.dumps(staged, indent=1))
        title = (t.group(1).strip().strip('\'"') if t else rel.stem).replace('`', '')
        pages.append({'notebook': str(rel), 'file': str(out), 'page': str(out.with_suffix('.html')), 'title': title, 'plotly': n_fig > 0,
                      'n_plotly': n_fig})
    for f in proc.rglob('*'):   # images and other files the notebooks reference
        if f.is_file() and f.suffix not in ('.ipynb', '.yml') and STAGE not in f.parents:
            (docs/f.relative_to(proc)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, docs/f.relative_to(proc))
    import plotly
    js = docs/PLOTLY_JS
    js.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(plotly.__file__).parent/'package_data'/'plotly.min.js', js)
    shim = docs/WORKER_SHIM; shim.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT/'tools'/'iframe_worker_shim.js', shim)
    (STAGE/'pages.json').write_text(json.dumps(pages, indent=1))
    return pages

# ---------------------------------------------------------------- 3. mkdocs
def mkdocs_config(cfg, pages) -> dict:
    return {
        'site_name': cfg.get('title', cfg.get('lib_name')), 'site_description': cfg.get('description', ''),
        'copyright': f"Copyright {cfg.get('copyright', '')}",
        'docs_dir': str(STAGE/'docs'), 'site_dir': str(ROOT/cfg.get('doc_path', '_docs')),
        'use_directory_urls': False, 'strict': False,
        'extra': {'polyfills': [WORKER_SHIM]},   # named *iframe-worker*, so the offline plugin adds no remote shim
        'theme': {'name': 'material', 'font': False,   # font: false -> no Google fonts
                  'features': ['navigation.footer', 'search.highlight', 'content.code.copy'],
                  'palette': {'primary': 'indigo'}},
        # offline: the search index is also written as search/search_index.js, so opening _docs/index.html from disk
        # (file://) searches without a server and without a console error
        'plugins': ['search', 'offline', {'mkdocs-jupyter': {'execute': False, 'include_requirejs': False, 'cache': False, 'no_prompt': True,
                                                  'remove_tag_config': {'remove_input_tags': ['hide-input']},
                                                  'include': ['*.ipynb'], 'toc_depth': 3}}],
        'markdown_extensions': ['tables', 'admonition', 'toc'],
        'nav': [{p['title']: p['file']} for p in pages],
    }

REMOTE = re.compile(r'''<(script|link|img|iframe|source|video|audio|embed)\b[^>]*?\s(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)''', re.I)
CDN = re.compile(r'//(cdn\.plot\.ly|cdnjs\.cloudflare\.com|cdn\.jsdelivr\.net|unpkg\.com|fonts\.googleapis\.com|fonts\.gstatic\.com)', re.I)

def postprocess(site: Path) -> list[str]:
    """Make the pages self-contained and lean; return any remaining reference to another host.

    Drops nbconvert's MathJax loader (math is MathML) and its mermaid loader (a CDN import, used only by mermaid
    diagrams, which the notebooks do not have), points any plotly CDN URL at the local copy, and moves the large
    notebook CSS that mkdocs-jupyter inlines into every page (~0.6 MB each) into one shared file."""
    import hashlib
    bad, shared = [], {}
    for f in sorted(site.rglob('*.html')):
        up = '../' * (len(f.relative_to(site).parts) - 1)
        h = f.read_text()
        h2 = re.sub(r'<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->', '', h, flags=re.S)
        h2 = re.sub(r'<script type="module">(?:(?!</script>).)*?mermaid\.esm(?:(?!</script>).)*</script>', '', h2, flags=re.S)
        h2 = re.sub(r'<script src="https?://[^"]*require(?:\.min)?\.js"></script>', '', h2)
        h2 = re.sub(r'(?:https?:)?//cdn\.plot\.ly/plotly[-\w.]*\.js', up + PLOTLY_JS, h2)
        def share(m):
            css = m.group(1)
            if len(css) < 50_000: return m.group(0)
            name = f'assets/jupyter/{hashlib.sha1(css.encode()).hexdigest()[:12]}.css'
            shared[name] = css
            return f'<link rel="stylesheet" href="{up}{name}">'
        h2 = re.sub(r'<style type="text/css">(.*?)</style>', share, h2, flags=re.S)
        if h2 != h: f.write_text(h2)
        bad += [f'{f.relative_to(site)}: {m.group(2)}' for m in REMOTE.finditer(h2)
                if not re.match(r'(https?:)?//(127\.0\.0\.1|localhost)[:/]', m.group(2))]
        bad += [f'{f.relative_to(site)}: mentions {m.group(0)!r}' for m in CDN.finditer(h2)]
    for name, css in shared.items():
        (site/name).parent.mkdir(parents=True, exist_ok=True)
        (site/name).write_text(css)
    return bad

def _text(html): return ' '.join(re.sub(r'<[^>]+>', ' ', html.replace('¶', '')).split())

def fix_anchors(site: Path) -> list[str]:
    """Repair in-page anchors; return the nbdev links that were unlinked.

    mkdocs-jupyter builds the table of contents with Python-Markdown, which drops inline code from a heading's slug
    (`## The `Prior` object` -> `#the-object`) while the heading's id keeps it (`the-prior-object`): such TOC links are
    pointed at the heading with the same text. nbdev links every backticked name it knows, private helpers without a
    `show_doc` section too; a link to an anchor that does not exist becomes plain code."""
    pages = {f: f.read_text() for f in site.rglob('*.html')}
    ids = {f: set(re.findall(r'\sid="([^"]+)"', h)) for f, h in pages.items()}
    unlinked = []
    for f, h in pages.items():
        heads = [(m.group(2), _text(re.sub(r'<code>.*?</code>', '', m.group(3), flags=re.S)))
                 for m in re.finditer(r'<h([1-6]) id="([^"]+)"[^>]*>(.*?)</h\1>', h, re.S)]
        def toc(m):
            if m.group(1) in ids[f]: return m.group(0)
            if m.group(2) == 'skip': hit = heads[0][0] if heads else None   # 'Skip to content' -> the title
            else: hit = next((i for i, t in heads if t == _text(m.group(3))), None)
            return m.group(0).replace(f'href="#{m.group(1)}"', f'href="#{hit}"') if hit else m.group(0)
        h2 = re.sub(r'<a href="#([^"]+)" class="md-(nav__link|skip)">(.*?)</a>', toc, h, flags=re.S)
        def dead(m):
            target = (f.parent/m.group(1)).resolve() if m.group(1) else f
            if target in ids and m.group(2) not in ids[target]:
                unlinked.append(f'{f.relative_to(site)}: {m.group(1)}#{m.group(2)}'); return m.group(3)
            return m.group(0)
        h2 = re.sub(r'<a href="([\w./-]*\.html)?#([^"]+)">(<code>[^<]*</code>)</a>', dead, h2)
        if h2 != h: f.write_text(h2)
    return unlinked

def build_mkdocs(nbs: Path):
    from nbdev.config import get_config
    cfg = get_config()
    t0 = time.time()
    proc = nbdev_process(nbs)
    t1 = time.time()
    pages = stage(proc, cfg)
    conf = mkdocs_config(cfg, pages)
    import yaml
    (STAGE/'mkdocs.yml').write_text(yaml.safe_dump(conf, sort_keys=False, allow_unicode=True))
    site = Path(conf['site_dir'])
    if site.exists(): shutil.rmtree(site)
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '-q', '-f', str(STAGE/'mkdocs.yml')], cwd=STAGE,
                       env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    if r.returncode: sys.exit(f'mkdocs build failed (config: {STAGE/"mkdocs.yml"})')
    bad = postprocess(site)
    unlinked = fix_anchors(site)
    if unlinked: print('note: nbdev links to anchors that do not exist (no show_doc for them), shown as plain code:\n  '
                       + '\n  '.join(unlinked), file=sys.stderr)
    if bad: sys.exit('the site references other hosts (it must work offline):\n  ' + '\n  '.join(bad))
    size = sum(f.stat().st_size for f in site.rglob('*') if f.is_file())
    print(f'built {site.relative_to(ROOT)}/: {len(pages)} pages, {size/2**20:.1f} MiB, nbdev processing {t1-t0:.0f}s, '
          f'total {time.time()-t0:.0f}s; pages with plotly figures: {[p["page"] for p in pages if p["plotly"]] or "none"}',
          file=sys.stderr)

def serve(port: int):
    import functools, http.server
    h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ROOT/'_docs'))
    print(f'serving _docs/ on http://127.0.0.1:{port}/ (Ctrl-C stops)', file=sys.stderr)
    http.server.ThreadingHTTPServer(('127.0.0.1', port), h).serve_forever()

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--engine', choices=['auto', 'mkdocs', 'quarto'], default='auto',
                    help='auto: nbdev_docs when quarto is on PATH, else MkDocs')
    ap.add_argument('--nbs', type=Path, help="notebooks folder (default: settings.ini's nbs_path)")
    ap.add_argument('--serve', type=int, metavar='PORT', help='serve _docs/ on 127.0.0.1:PORT after building')
    a = ap.parse_args()
    os.chdir(ROOT)
    if a.engine == 'quarto' or (a.engine == 'auto' and shutil.which('quarto')):
        subprocess.run(['nbdev_docs'], check=True)
    else:
        from nbdev.config import get_config
        build_mkdocs((a.nbs or get_config().nbs_path).resolve())
    if a.serve: serve(a.serve)
