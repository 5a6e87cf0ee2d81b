"""The `explorer()` of nbs/09_viz.ipynb in a real JupyterLab: start JupyterLab headless on 127.0.0.1 (token, free
port, everything in a temp dir), open a temp copy of 09_viz.ipynb in Debian's Chromium via Playwright, run a cell
`from fair_calib_nb.viz import explorer; explorer()` put at its top, and check that the ipywidgets dropdowns and the
plotly figure appear, and that changing a dropdown redraws the figure. nbs/ is never touched. Screenshot:
`test_output/jupyterlab_explorer.png`. Skips without `/usr/bin/chromium` or the `playwright` package."""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT/'test_output'
CHROMIUM = '/usr/bin/chromium'
ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run']
CELL = 'from fair_calib_nb.viz import explorer; explorer()'

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def api(base, path, token, method='GET', timeout=5):
    req = urllib.request.Request(f'{base}{path}', method=method, headers={'Authorization': f'token {token}'})
    with urllib.request.urlopen(req, timeout=timeout) as r: return json.loads(r.read() or b'null')

@pytest.fixture
def lab(tmp_path):
    "A JupyterLab server rooted in a temp dir holding a copy of 09_viz.ipynb with the explorer cell on top."
    from test_docs_site import need_browser
    need_browser()
    if shutil.which('jupyter') is None: pytest.skip('jupyter is not on PATH')
    src = ROOT/'nbs'/'09_viz.ipynb'
    if not src.exists(): pytest.skip('no nbs/09_viz.ipynb')
    work = tmp_path/'lab'; work.mkdir()
    nb = json.loads(src.read_text())
    nb['metadata']['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3 (ipykernel)', 'language': 'python'}
    nb['cells'].insert(0, {'cell_type': 'code', 'execution_count': None, 'id': 'explorer-check', 'metadata': {},
                           'outputs': [], 'source': CELL})
    (work/'09_viz.ipynb').write_text(json.dumps(nb))
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, 'FAIR_CALIB_DATA': str(ROOT/'data'), 'OMP_NUM_THREADS': '1', 'FAIR_CALIB_THREADS': '1',
           'JUPYTERLAB_SETTINGS_DIR': str(tmp_path/'settings'), 'JUPYTERLAB_WORKSPACES_DIR': str(tmp_path/'workspaces'),
           'JUPYTER_RUNTIME_DIR': str(tmp_path/'runtime'), 'JUPYTER_CONFIG_DIR': str(tmp_path/'config'),
           'IPYTHONDIR': str(tmp_path/'ipython')}
    log = open(tmp_path/'jupyterlab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyter', 'lab', '--no-browser', '--allow-root', f'--port={port}',
                             '--ServerApp.ip=127.0.0.1', f'--ServerApp.token={token}', f'--ServerApp.root_dir={work}',
                             '--ServerApp.port_retries=0', '--LabApp.news_url=',
                             '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f'http://127.0.0.1:{port}'
    try:
        for _ in range(240):
            if proc.poll() is not None or _up(base, token): break
            time.sleep(0.25)
        if proc.poll() is not None or not _up(base, token):
            pytest.fail(f'JupyterLab did not start:\n{(tmp_path/"jupyterlab.log").read_text()[-3000:]}')
        yield base, token, tmp_path/'jupyterlab.log'
    finally:
        try:   # kernels first: /api/shutdown alone can wait ~20 s on a kernel that is still starting
            for k in api(base, '/api/kernels', token): api(base, f'/api/kernels/{k["id"]}', token, method='DELETE', timeout=30)
            api(base, '/api/shutdown', token, method='POST')
        except OSError: pass
        try: proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try: proc.wait(10)
            except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL)
        log.close()

def _up(base, token):
    try: api(base, '/api/status', token); return True
    except OSError: return False

def test_explorer_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright, expect
    base, token, log = lab
    offsite, errors = [], []
    (OUT/'jupyterlab_failure.png').unlink(missing_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = b.new_context(viewport={'width': 1400, 'height': 1000})
            def route(r):   # JupyterLab is not ours to police, but nothing may leave the machine
                if r.request.url.startswith(('http://127.0.0.1', 'ws://127.0.0.1', 'data:', 'blob:')): return r.continue_()
                offsite.append(r.request.url); r.abort()
            ctx.route('**/*', route)
            page = ctx.new_page()
            page.on('pageerror', lambda e: errors.append(str(e)))
            page.set_default_timeout(90_000)
            page.goto(f'{base}/lab/tree/09_viz.ipynb?token={token}', wait_until='domcontentloaded')
            first = page.locator('.jp-NotebookPanel .jp-Cell').first
            expect(first.locator('.cm-content')).to_contain_text(CELL, timeout=90_000)
            # run only once the page's kernel connection is up (status bar: 'Python 3 (ipykernel) | Idle')
            expect(page.locator('.jp-StatusBar-Widget').filter(has_text='| Idle').first).to_be_visible(timeout=90_000)
            first.locator('.cm-content').click()              # into the cell's editor ...
            page.keyboard.press('Shift+Enter')                # ... and run it (queued until the kernel is up)
            out = first.locator('.jp-OutputArea')
            out.locator('.widget-dropdown select').nth(5).wait_for(timeout=120_000)
            labels = [t.strip() for t in out.locator('.widget-dropdown label').all_inner_texts()]
            assert {'model', 'suite', 'prompt', 'steps', 'block', 'commits'} <= set(labels), labels
            plot = out.locator('.js-plotly-plot')
            plot.locator('svg.main-svg').first.wait_for(timeout=120_000)
            n_steps = lambda: page.evaluate("() => { const g = document.querySelector('.jp-OutputArea .js-plotly-plot');"
                                            " return g && g.layout.sliders ? g.layout.sliders[0].steps.length : -1; }")
            assert n_steps() == 12                            # explorer's default: 12 steps
            steps = out.locator('.widget-dropdown').filter(has_text='steps').locator('select')
            steps.select_option('24')                         # a widget change re-renders the figure
            page.wait_for_function("() => { const g = document.querySelector('.jp-OutputArea .js-plotly-plot');"
                                   " return g && g.layout.sliders && g.layout.sliders[0].steps.length === 24; }", timeout=120_000)
            OUT.mkdir(exist_ok=True)
            first.scroll_into_view_if_needed()
            page.screenshot(path=str(OUT/'jupyterlab_explorer.png'))
            assert not errors, f'JavaScript errors in JupyterLab: {errors}'
        except Exception:
            print(f'JupyterLab log:\n{log.read_text()[-4000:]}')
            try: OUT.mkdir(exist_ok=True); page.screenshot(path=str(OUT/'jupyterlab_failure.png'))
            except Exception: pass
            raise
        finally:
            if offsite: print(f'blocked {len(offsite)} requests off 127.0.0.1: {sorted(set(offsite))[:5]}')
            b.close()
