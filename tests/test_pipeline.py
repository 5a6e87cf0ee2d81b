"The `fair-calib` pipeline and command: outputs, report, resume (with the original timings kept), overwrite rules, bad input."
import json, os, re, subprocess, sys, pytest
import fair_calib_nb.calib as C
from fair_calib_nb.cli import main

pytestmark = pytest.mark.slow
SMALL = ['run', '--methods', 'rtn', 'fair', '--epochs', '1', '--n-calib', '8', '--limit', '8', '--n-probe', '16', '--n-lag', '4']

def _run(argv):
    try: main(['--quiet'] + argv); return 0
    except SystemExit as e: return e.code

def _figures(d):
    "The figures the report of run directory `d` draws (`report_sections`, None: left out) and the plotly divs its HTML holds."
    import torch
    from fair_calib_nb.pipeline import report_sections
    from fair_calib_nb.prior import Prior
    res = json.loads((d/'results.json').read_text())
    priors = {p.stem.rsplit('-s', 1)[0]: Prior.load(p) for p in sorted((d/'priors').glob('*-s0.json'))}
    made = [f for k, f in report_sections(res, torch.tensor(res['teacher']['lag']), res['runs'], priors) if k == 'figure' and f is not None]
    return len(made), len(re.findall(r'<div id="[^"]+" class="plotly-graph-div"', (d/'report.html').read_text()))

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
    assert {'config.json', 'results.json', 'results.md', 'report.html', 'timings.json', 'models', 'priors', 'runs'} <= names
    res = json.loads((first/'results.json').read_text())
    assert set(res['summary']) == {'rtn', 'fair'} and {'flip_rate_answer', 'kl_answer', 'flip_rate_answer_b2'} <= set(res['summary']['fair'])
    assert {'teacher_eval', 'stage1_s0'} <= set(res['timings'][0]['stages']) and res['environment']['threads'] >= 1
    from fair_calib_nb.progress import cpu_name
    assert res['environment']['processor'] == cpu_name() != '?'
    page = (first/'report.html').read_text()
    assert len(page) > 3_000_000 and 'Plotly.newPlot' in page and not re.search(r'<script[^>]+src=["\']https?:', page)
    assert '<td>n_probe</td><td>16</td>' in page and '<td>epochs</td><td>1</td>' in page        # the settings, read back
    assert 'teacher_eval' in page and 'Settings and timings' in page
    assert '| fair | 1 |' in (first/'results.md').read_text()
    made, divs = _figures(first)   # one seed: no per-seed dot plots; the per-block flips, the lag CCDF and fair's prior
    assert made == divs == 3, (made, divs)
    cfg = json.loads((first/'models'/'fair-s0'/'config.json').read_text())
    assert cfg['quantization_config']['quant_method'] == 'fair_calib' and not (first/'models'/'fair-s0.partial').exists()

def test_existing_dir_needs_flag_and_keeps_files(first, capsys):
    before = sorted(p.name for p in first.rglob('*'))
    assert _run(SMALL + ['--out', str(first)]) == 2 and 'pass --overwrite' in capsys.readouterr().err
    assert _run(SMALL + ['--out', str(first), '--epochs', '2', '--resume']) == 2 and "differ in ['epochs']" in capsys.readouterr().err
    assert sorted(p.name for p in first.rglob('*')) == before

def test_resume_equals_uninterrupted_and_keeps_timings(first, tmp_path, monkeypatch, capsys):
    orig = C.save_student
    def stop(s, path, **kw):
        orig(s, path, **kw)
        if str(path).endswith('fair-s0.partial') and s.calib_log['done'] == 2: raise KeyboardInterrupt
    monkeypatch.setattr(C, 'save_student', stop)
    with pytest.raises(SystemExit) as stop: main(['--quiet'] + SMALL + ['--out', str(tmp_path/'b')])
    monkeypatch.undo()
    assert stop.value.code == 130 and '--resume' in capsys.readouterr().err
    t0 = json.loads((tmp_path/'b'/'timings.json').read_text())
    assert (tmp_path/'b'/'models'/'fair-s0.partial').exists() and (tmp_path/'b'/'teacher.json').exists()
    assert _run(SMALL + ['--out', str(tmp_path/'b'), '--resume']) == 0
    a, b = (json.loads((d/'results.json').read_text()) for d in (first, tmp_path/'b'))
    assert _strip(a) == _strip(b)
    assert b['timings'][0]['stages'] == t0[0]['stages'] and b['timings'][1]['resumed'] and 'teacher_eval' not in b['timings'][1]['stages']
    assert _run(SMALL + ['--out', str(tmp_path/'b'), '--resume']) == 0          # a finished run resumed again: history kept
    c = json.loads((tmp_path/'b'/'results.json').read_text())
    assert c['timings'][:2] == b['timings'][:2] and len(c['timings']) == 3

def test_bad_input_before_any_model(tmp_path, capsys):
    (tmp_path/'file').write_text('keep me')
    assert _run(SMALL + ['--out', str(tmp_path/'file')]) == 2 and 'not a directory' in capsys.readouterr().err
    assert (tmp_path/'file').read_text() == 'keep me'
    assert _run(['run', '--model', str(tmp_path/'nope'), '--out', str(tmp_path/'y')]) == 2
    assert 'neither a shipped model' in capsys.readouterr().err and not (tmp_path/'y').exists()
    assert _run(['run', '--prior', 'scope=everything', '--out', str(tmp_path/'z')]) == 2 and "unknown scope 'everything'" in capsys.readouterr().err
    assert _run(['run', '--calib', 'lr=abc', '--out', str(tmp_path/'z')]) == 2 and 'lr takes a number' in capsys.readouterr().err
    assert _run(['run', '--calib', 'learning_rate=1', '--out', str(tmp_path/'z')]) == 2
    assert "unknown field(s) ['learning_rate']" in capsys.readouterr().err
    assert not (tmp_path/'z').exists()

def test_every_stage_timed_and_in_the_report(first):
    "timings.json names every stage (the evaluations too) and they cover the invocation's wall time; the report lists them."
    t = json.loads((first/'timings.json').read_text())[0]
    assert {'load_teacher', 'teacher_eval', 'stage1_s0', 'calibrate rtn-s0', 'evaluate rtn-s0', 'calibrate fair-s0', 'evaluate fair-s0',
            'report'} <= set(t['stages'])
    assert sum(v['seconds'] for v in t['stages'].values()) >= 0.9 * t['seconds'], t
    page = (first/'report.html').read_text()
    assert '<td>evaluate fair-s0</td>' in page and '<td>total (wall)</td>' in page

def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    "`--overwrite` (and the Python API's overwrite) never deletes a directory fair-calib did not make."
    from fair_calib_nb.pipeline import PipelineConfig, PipelineError, run_pipeline
    d = tmp_path/'notes'; d.mkdir(); (d/'notes.txt').write_text('keep me')
    assert _run(SMALL + ['--out', str(d), '--overwrite']) == 2 and f'{d} is not a fair-calib run directory' in capsys.readouterr().err
    with pytest.raises(PipelineError, match='is not a fair-calib run directory'): run_pipeline(PipelineConfig(methods=['rtn']), d, overwrite=True)
    assert os.listdir(d) == ['notes.txt'] and (d/'notes.txt').read_text() == 'keep me'

def test_evaluation_too_large_for_memory_is_refused(tmp_path, capsys, monkeypatch):
    "An evaluation whose streamed memory cannot fit is refused before the teacher is decoded, naming a --limit that fits (or none)."
    import fair_calib_nb.pipeline as P
    from fair_calib_nb.models import load_dllm
    sp = P.eval_splits(P.PipelineConfig(limit=8))
    need = lambda k: P.eval_memory(load_dllm('tiny-llada'), sp, n_lag=4, limit=k)   # SMALL: --limit 8 --n-lag 4
    assert need(1) < need(3) < need(8)
    monkeypatch.setattr(P, '_available_memory', lambda: need(3))
    assert _run(SMALL + ['--out', str(tmp_path/'m')]) == 2
    err = capsys.readouterr().err
    assert "log-probabilities over 47 tokens" in err and 'pass --limit 3 or less' in err and not (tmp_path/'m').exists()
    monkeypatch.setattr(P, '_available_memory', lambda: need(1) - 1)
    assert _run(SMALL + ['--out', str(tmp_path/'m')]) == 2
    assert f'one problem per suite needs {need(1) / 1e6:.2g} MB' in capsys.readouterr().err and not (tmp_path/'m').exists()

def test_real_vocabulary_evaluation_is_streamed_not_refused():
    "A LLaDA-8B-sized evaluation at the default --limit (200 per suite, n_lag 64) holds ~1.7 GB (chunks of 2 problems), not 146 GB."
    from types import SimpleNamespace as NS
    import fair_calib_nb.pipeline as P
    from fair_calib_nb.evaluate import frontier_memory
    from fair_calib_nb.models import load_dllm
    cfg = P.PipelineConfig(); sp = P.eval_splits(cfg); assert [len(s['eval'].prompts) for s in sp.values()] == [200, 200]
    big = NS(name='LLaDA-8B', family=load_dllm('tiny-llada').family, model=NS(config=NS(vocab_size=126464)))
    dec = P.default_decoding(big); whole = 4 * dec.steps * dec.gen_length * 126464 * 400   # every problem's teacher log-probs
    need = P.eval_memory(big, sp, cfg.n_lag)
    assert P.eval_chunk(big) == 2 and need == frontier_memory(126464, dec, 200)['chunk'] < 2e9 < whole / 10
    P.check_eval_memory(big, sp, available=8e9, n_lag=cfg.n_lag)           # the old check refused this (it counted `whole`)
    one = P.eval_memory(big, sp, cfg.n_lag, limit=1)                        # 1 problem: a smaller chunk, though its log-probs are kept
    with pytest.raises(P.PipelineError, match='pass --limit 1 or less'): P.check_eval_memory(big, sp, available=need - 1, n_lag=cfg.n_lag)
    with pytest.raises(P.PipelineError, match=f'one problem per suite needs {one / 1e9:.2g} GB'):
        P.check_eval_memory(big, sp, available=one - 1, n_lag=cfg.n_lag)

def test_help_is_quick_and_imports_no_torch():
    "`fair-calib --help` parses before any heavy import (timings: benchmarks/bench_cli.py)."
    code = ("import sys; sys.argv = ['fair-calib', '--help']; import fair_calib_nb.cli as c\n"
            "try: c.main()\nexcept SystemExit: pass\nassert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr and 'n-probe' not in r.stdout
    r = subprocess.run([sys.executable, '-m', 'fair_calib_nb', 'run', '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and '(default: 256)' in r.stdout and 'flatquant' in r.stdout
    r = subprocess.run([sys.executable, '-m', 'fair_calib_nb', '--version'], capture_output=True, text=True)
    assert r.stdout.startswith('fair-calib-nb ')

@pytest.mark.browser
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
        n_div = page.eval_on_selector_all('.plotly-graph-div', 'e => e.length')
        n_svg = page.eval_on_selector_all('.plotly-graph-div .main-svg', 'e => e.length')
        page.set_viewport_size(dict(width=1300, height=900)); os.makedirs('test_output', exist_ok=True)
        page.screenshot(path='test_output/report.png', full_page=True)
        b.close()
    made, divs = _figures(first)
    assert n_div == made == divs and n_svg >= n_div and not blocked and not errors, (n_div, made, divs, n_svg, blocked, errors)
