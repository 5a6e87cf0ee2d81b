"The `fair-calib` pipeline and command: outputs, resume, overwrite rules, bad input."
import json, re, pytest
import fair_calib_nb.calib as C
from fair_calib_nb.cli import main

SMALL = ['--methods', 'rtn', 'fair', '--epochs', '1', '--n-calib', '8', '--limit', '8', '--n-probe', '16', '--n-lag', '4', '--quiet']

def _run(argv, capsys=None):
    try: main(argv); return 0
    except SystemExit as e: return e.code

def _strip(res):   # drop wall times, which differ between runs
    for r in res['runs']: r.pop('times'); [b.pop('seconds') for b in r['calib_blocks']]
    return dict(summary=res['summary'], runs=res['runs'])

@pytest.fixture(scope='module')
def first(tmp_path_factory):
    out = tmp_path_factory.mktemp('p')/'a'
    assert _run(SMALL + ['--out', str(out)]) == 0
    return out

def test_outputs(first):
    names = {p.name for p in first.iterdir()}
    assert {'config.json', 'results.json', 'results.md', 'report.html', 'models', 'priors', 'runs'} <= names
    res = json.loads((first/'results.json').read_text())
    assert set(res['summary']) == {'rtn', 'fair'} and res['summary']['fair']['prior_spread']['mean'] > 1
    assert {'teacher_eval', 'stage1_s0'} <= set(res['stage_times'])
    page = (first/'report.html').read_text()
    assert len(page) > 3_000_000 and 'Plotly.newPlot' in page                      # plotly.js inlined
    assert not re.search(r'<script[^>]+src=["\']https?:', page)                     # nothing fetched from the network
    assert '| fair | 1 |' in (first/'results.md').read_text()
    assert (first/'models'/'fair-s0'/'quant.json').exists() and not (first/'models'/'fair-s0.partial').exists()

def test_existing_dir_needs_flag_and_keeps_files(first, capsys):
    before = sorted(p.name for p in first.rglob('*'))
    assert _run(SMALL + ['--out', str(first)]) == 2
    assert 'pass --overwrite' in capsys.readouterr().err
    assert _run(SMALL + ['--out', str(first), '--epochs', '2', '--resume']) == 2
    assert "differ in ['epochs']" in capsys.readouterr().err
    assert sorted(p.name for p in first.rglob('*')) == before

def test_resume_equals_uninterrupted(first, tmp_path, monkeypatch):
    orig = C.train_block
    def interrupt(*a, **k):
        if a[7] == 'block 2': raise KeyboardInterrupt
        return orig(*a, **k)
    monkeypatch.setattr(C, 'train_block', interrupt)
    with pytest.raises(KeyboardInterrupt): main(SMALL + ['--out', str(tmp_path/'b')])
    monkeypatch.undo()
    assert (tmp_path/'b'/'models'/'fair-s0.partial').exists() and (tmp_path/'b'/'runs'/'rtn-s0.json').exists()
    assert (tmp_path/'b'/'teacher.json').exists()                      # the resumed run reuses the teacher's scores
    assert _run(SMALL + ['--out', str(tmp_path/'b'), '--resume']) == 0
    a, b = (json.loads((d/'results.json').read_text()) for d in (first, tmp_path/'b'))
    assert _strip(a) == _strip(b)

def test_bad_input(tmp_path, capsys):
    (tmp_path/'file').write_text('keep me')
    assert _run(SMALL + ['--out', str(tmp_path/'file'/'sub')]) == 2
    assert 'cannot write to output directory' in capsys.readouterr().err and (tmp_path/'file').read_text() == 'keep me'
    assert _run(['--methods', 'gptq', '--out', str(tmp_path/'x')]) == 2
    assert 'unknown method' in capsys.readouterr().err
    assert _run(['--model', str(tmp_path/'nope'), '--out', str(tmp_path/'y')]) == 2
    assert 'neither a shipped model' in capsys.readouterr().err and not (tmp_path/'y').exists()
    assert _run(['--prior', 'scope=everything', '--out', str(tmp_path/'z')]) == 2
    assert "unknown scope 'everything'" in capsys.readouterr().err
    assert _run(['--eval-split', 'val', '--limit', '200', '--out', str(tmp_path/'v')]) == 2
    assert 'eval_split=val leaves 128' in capsys.readouterr().err and not (tmp_path/'v').exists()

def test_report_opens_offline_in_a_browser(first):
    "report.html in headless Chromium with every non-file request blocked: all figures render, no console error."
    from test_docs_site import need_browser, launch
    need_browser()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = launch(p); ctx = b.new_context(); blocked, errors = [], []
        ctx.route('**/*', lambda r: r.continue_() if r.request.url.startswith('file://') else (blocked.append(r.request.url), r.abort()))
        page = ctx.new_page(); page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
        page.goto((first/'report.html').as_uri()); page.wait_for_timeout(1500)
        n_div, n_svg = page.eval_on_selector_all('.plotly-graph-div', 'e => e.length'), page.eval_on_selector_all('.plotly-graph-div .main-svg', 'e => e.length')
        b.close()
    assert n_div >= 5 and n_svg >= n_div and not blocked and not errors, (n_div, n_svg, blocked, errors)
