"The `fair-calib` command as a user runs it: every subcommand end to end, refusals before torch, help, Ctrl-C, damaged weights."
import json, os, re, shutil, signal, subprocess, sys, time
import pytest
from fair_calib_nb.cli import build_parser, SUBCOMMANDS

ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
CLI = [sys.executable, '-m', 'fair_calib_nb', '--threads', '1']
DATA = os.path.join(os.path.dirname(__file__), '..', 'data')


def fc(*argv, cwd=None, check=None):
    "Run `fair-calib argv` in a fresh process (stdout and stderr are pipes, as in a log); returns the CompletedProcess."
    r = subprocess.run(CLI + [str(a) for a in argv], capture_output=True, text=True, env=ENV, cwd=cwd)
    if check is not None: assert r.returncode == check, (argv, r.returncode, r.stderr[-3000:])
    return r


def clean_log(err:str):
    "What a log file must not hold: terminal escape codes, carriage returns, transformers' own bars, tracebacks."
    assert '\x1b' not in err and '\r' not in err, repr(err[-500:])
    for s in ('Loading weights', 'Writing model shards', 'Traceback'): assert s not in err, (s, err[-2000:])


@pytest.mark.slow
def test_every_subcommand_end_to_end(tmp_path):
    "quantize -> eval (a .json file and a directory) -> run -> report -> dryrun, each as a user types it, at small sizes."
    stu = tmp_path/'stu'
    r = fc('quantize', 'tiny-llada', '--method', 'fair', '--n-calib', 4, '--n-probe', 4, '--epochs', 1, '--out', stu, check=0)
    clean_log(r.stderr); assert (stu/'config.json').exists() and (stu/'model.safetensors').exists()
    r = fc('eval', stu, '--tasks', 'fair_calib', '--limit', 3, '--out', tmp_path/'x.json', check=0)
    assert (tmp_path/'x.json').is_file() and re.search(r'^sort: exact match \d\.\d{4}$', r.stdout, re.M), r.stdout
    assert set(json.loads((tmp_path/'x.json').read_text())['accuracy']) == {'sort', 'walk', 'mean'}
    assert 'Loading weights' not in r.stderr and 'Traceback' not in r.stderr
    fc('eval', 'tiny-llada', '--tasks', 'walk', '--limit', 2, '--out', tmp_path/'ev', check=0)
    assert (tmp_path/'ev'/'results.json').is_file() and (tmp_path/'ev'/'samples_fair_calib_walk.json').is_file()
    out = tmp_path/'run'
    r = fc('run', '--methods', 'rtn', '--limit', 4, '--n-calib', 4, '--n-probe', 4, '--epochs', 1, '--n-lag', 2, '--out', out, check=0)
    clean_log(r.stderr)
    res = json.loads((out/'results.json').read_text())
    assert res['environment']['processor'] not in ('?', '') and 'evaluate rtn-s0' in res['timings'][0]['stages']
    (out/'report.html').unlink()
    fc('report', out, check=0); assert (out/'report.html').exists()
    r = fc('dryrun', os.path.join(DATA, 'tiny-llada'), '--n-calib', 4, '--steps', 1, '--device', 'cpu', check=0)
    assert json.loads(r.stdout), r.stdout


def test_bad_values_are_refused_before_torch():
    "Each refusal: one line naming the problem, exit status 2, and torch never imported (the console script's process)."
    bad = [['run', '--calib', 'lr=abc'], ['run', '--scheme', 'W3A3'], ['run', '--epochs', '-1'], ['run', '--n-probe', '-5'],
           ['run', '--limit', '-1'], ['run', '--calib', 'learning_rate=1'], ['run', '--prior', 'boosst=2'], ['run', '--prior', 'boost=x'],
           ['run', '--resume', '--out', os.path.dirname(__file__)], ['eval', 'tiny-llada', '--limit', '0'],
           ['eval', 'tiny-llada', '--tasks', 'gsm8k'], ['quantize', 'tiny-llada', '--out', 'q', '--n-calib', '0']]
    code = ('import json, sys, contextlib, io\nbad, sys.argv = json.loads(sys.argv[1]), ["fair-calib"]\n'
            'from fair_calib_nb.cli import main\nout = []\nfor argv in bad:\n    err = io.StringIO()\n'
            '    with contextlib.redirect_stderr(err):\n        try: main(argv)\n'
            '        except SystemExit as e: out.append((e.code, err.getvalue()))\n'
            "print(json.dumps(dict(out=out, torch='torch' in sys.modules)))")
    r = json.loads(subprocess.run([sys.executable, '-c', code, json.dumps(bad)], capture_output=True, text=True, check=True, env=ENV).stdout)
    assert not r['torch'] and [c for c, _ in r['out']] == [2] * len(bad), r
    msgs = [m.strip() for _, m in r['out']]
    assert all(m.startswith('fair-calib: ') and m.count('\n') == 0 for m in msgs), msgs
    assert msgs[0] == "fair-calib: --calib: lr takes a number (float or None), got 'abc'"
    assert msgs[7] == "fair-calib: --prior: boost takes a number (float), got 'x'"
    assert 'is not a fair-calib run directory' in msgs[8] and "unknown field(s) ['boosst']" in msgs[6]


def test_every_option_has_help_and_one_default():
    parsers = {'fair-calib': build_parser()}
    for a in build_parser()._actions:
        if hasattr(a, 'choices') and isinstance(a.choices, dict): parsers.update(a.choices)
    assert set(parsers) == {'fair-calib', *SUBCOMMANDS}
    missing = [(n, a.dest) for n, p in parsers.items() for a in p._actions if a.dest != 'help' and not (a.help or '').strip()]
    assert missing == []
    for n, p in parsers.items():
        h = re.sub(r'\s+', ' ', p.format_help())
        assert 'default: None' not in h and 'default: False' not in h and not re.search(r'default[^()]*\) \(default', h), (n, h)
    assert 'torch CPU threads (default: torch chooses) --quiet' in re.sub(r'\s+', ' ', build_parser().format_help())


def test_overwrite_never_deletes_a_directory_fair_calib_did_not_make(tmp_path):
    notes = tmp_path/'notes'; notes.mkdir(); (notes/'notes.txt').write_text('keep me')
    for argv in (['run', '--overwrite'], ['run', '--resume'], ['quantize', 'tiny-llada', '--overwrite']):
        r = fc(*argv, '--out', notes, check=2)
        assert f'{notes} is not a' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert (notes/'notes.txt').read_text() == 'keep me' and os.listdir(notes) == ['notes.txt']


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume(tmp_path):
    "SIGINT mid-run: one line with the --resume command, exit 130, no traceback; that command then finishes the run."
    out = tmp_path/'o'
    argv = ['run', '--methods', 'rtn', 'flatquant', '--limit', '4', '--n-calib', '32', '--epochs', '6', '--n-lag', '0', '--out', str(out)]
    p = subprocess.Popen(CLI + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    t0 = time.time()
    while not (out/'runs'/'rtn-s0.json').exists() and p.poll() is None and time.time() - t0 < 300: time.sleep(0.05)
    time.sleep(0.5)
    assert p.poll() is None, 'the run ended before it could be interrupted'
    p.send_signal(signal.SIGINT); _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and 'Traceback' not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith('fair-calib: interrupted') and '--resume' in last and str(out) in last, last
    again = last.split('continue with the same settings: ', 1)[1].split()
    assert again[0] == 'fair-calib' and again[-1] == '--resume'
    r = fc(*again[1:], check=0)
    assert 'rtn seed 0: kept from an earlier run' in r.stderr
    res = json.loads((out/'results.json').read_text())
    assert set(res['summary']) == {'rtn', 'flatquant'} and len(res['timings']) == 2


@pytest.mark.slow
def test_truncated_weights_are_named_and_leave_nothing(tmp_path):
    cut = shutil.copytree(os.path.join(DATA, 'tiny-llada'), tmp_path/'cut')
    w = cut/'model.safetensors'; os.truncate(w, w.stat().st_size // 2)
    r = fc('run', '--model', cut, '--methods', 'rtn', '--limit', 2, '--out', tmp_path/'o', check=2)
    assert f'{w}: cannot read its weights' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (tmp_path/'o').exists()                                 # nothing half-made that would block the rerun
    r = fc('quantize', cut, '--method', 'rtn', '--out', tmp_path/'q', check=2)
    assert f'{w}: cannot read its weights' in r.stderr and not (tmp_path/'q').exists()


def test_only_run_splits_over_torchrun_ranks(tmp_path):
    "Under torchrun (WORLD_SIZE > 1) every subcommand but `run` is refused, naming it, before anything is loaded or written."
    env = {**ENV, 'WORLD_SIZE': '2', 'RANK': '1'}
    for cmd in (['quantize', 'tiny-llada', '--out', str(tmp_path/'q')], ['eval', 'tiny-llada', '--out', str(tmp_path/'e')]):
        r = subprocess.run(CLI + cmd, capture_output=True, text=True, env=env)
        assert r.returncode == 2 and f'only `fair-calib run` splits over torchrun ranks; run `{cmd[0]}` in one process' in r.stderr, r.stderr
    assert not any(tmp_path.iterdir())
