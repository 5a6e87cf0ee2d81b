"""Data parallel on torch.distributed: two gloo ranks on the CPU (torchrun, local rendezvous) give one process's numbers."""
import json, math, os, subprocess, sys, textwrap
import pytest, torch
from fair_calib_nb.dist import dist_env, shard
from fair_calib_nb.prior import PriorConfig, build_prior
from fair_calib_nb.calib import CalibConfig, calib_data, calibrate
from fair_calib_nb.evaluate import evaluate_student, teacher_forced, frontier_counts, pool_counts, score_suites
from fair_calib_nb.lmeval import run_lmeval
from fair_calib_nb.tasks import make_splits, calib_pairs
from fair_calib_nb.frontier import stability_lag

N_PROBE, PROBE_BATCH, N_CALIB, LIMIT, BATCH, LMEVAL, N_LAG = 12, 8, 4, 7, 4, 4, 3
ARGS = ['--model', 'tiny-llada', '--method', 'rtn', '--n-probe', str(N_PROBE), '--probe-batch', str(PROBE_BATCH), '--n-calib', str(N_CALIB),
        '--calib-data', 'states', '--limit', str(LIMIT), '--batch-size', str(BATCH), '--lmeval-limit', str(LMEVAL), '--n-lag', str(N_LAG), '--quiet']

# Run under torchrun: the collectives' edge cases (a rank without problems, mismatched counts), then the entry point `main`.
SCRIPT = textwrap.dedent('''
    import sys, torch, pytest
    from fair_calib_nb.dist import *
    from fair_calib_nb.decode import generate
    from fair_calib_nb.models import load_dllm
    e = dist_env(); r = e.rank
    assert e.world_size == 2 and e.backend == 'gloo' and e.device == 'cpu', e
    assert gather_objects(['a', 'b'] if r == 0 else None) == ['a', 'b']
    assert all_reduce_counts({} if r else dict(n=3, kl=(1.5, 2))) == dict(n=3, kl=(1.5, 2))
    c = all_reduce_counts(dict(n=r + 1, t=torch.tensor([r, 1])))
    assert c['n'] == 3 and torch.equal(c['t'], torch.tensor([1, 2]))
    with pytest.raises(ValueError, match='another type or shape'): all_reduce_counts(dict(n=1) if r == 0 else dict(n=(1, 2)))
    d = load_dllm('tiny-llada'); p = ['3 1 2 ->']       # one problem: rank 1 decodes nothing
    g = dist_generate(d, p, progress=False)
    assert g.answers == generate(d, p, progress=False).answers
    assert DistFairCalibLM(dllm=d).all_gather(torch.tensor(r)).tolist() == [0, 1]
    main(sys.argv[1:])
''')


def test_dist_env_needs_torchrun(monkeypatch):
    for k in ('RANK', 'MASTER_ADDR', 'MASTER_PORT'): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv('WORLD_SIZE', '2')
    with pytest.raises(RuntimeError, match='launch with torchrun'): dist_env()
    monkeypatch.setenv('WORLD_SIZE', '1')
    assert not dist_env().active and shard(5) == range(5)


@pytest.mark.slow
def test_two_ranks_equal_one_process(tmp_path, llada):
    script = tmp_path/'run.py'; script.write_text(SCRIPT); out = tmp_path/'out'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'TOKENIZERS_PARALLELISM': 'false'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script), *ARGS, '--out', str(out)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
    res = json.loads((out/'dist.json').read_text())
    assert res['world_size'] == 2 and res['backend'] == 'gloo'
    torch.set_num_threads(1)
    sp = make_splits(0); P, A = calib_pairs(sp, N_CALIB)
    # Stage I: the prior (and its parts) bit for bit; the 12 probes are one batch of 8 (rank 0) and one of 4 (rank 1)
    prior = build_prior(llada, P, PriorConfig(n_probe=N_PROBE, seed=0), batch_size=PROBE_BATCH, progress=False)
    for f in ('window', 'frontier_part', 'reliability_part'): assert res['prior'][f] == getattr(prior, f).tolist(), f
    assert res['prior']['provenance']['ranks'] == 2
    # the states calibration data, gathered: bit for bit
    cd, got = calib_data(llada, P, A, 'states', 0), torch.load(out/'calib_data.pt')
    for f in ('x', 'attention_mask', 'runs', 'steps'): assert torch.equal(got[f], getattr(cd, f)), f
    # evaluation: answers and accuracy exact, integer counts exact, the two float sums to float32 summation order
    student = calibrate(llada, P, A, CalibConfig(method='rtn', quant='W4A4', seed=0), progress=False)
    ref = evaluate_student(llada, student, sp, limit=LIMIT, n_lag=N_LAG, progress=False)
    ev = res['eval']
    assert ev['accuracy'] == ref['accuracy'] and ev['agreement'] == ref['agreement']
    for s, counts in ref['frontier_counts'].items():
        assert set(ev['frontier_counts'][s]) == set(counts)
        for k, (num, den) in counts.items():
            gnum, gden = ev['frontier_counts'][s][k]
            assert gden == den, (s, k)
            if k.startswith(('kl', 'mean_disagree')): assert math.isclose(gnum, num, rel_tol=1e-5, abs_tol=1e-6), (s, k, gnum, num)
            else: assert gnum == num, (s, k)
    for k, v in ref['metrics'].items():
        assert (math.isnan(v) and math.isnan(ev['metrics'][k])) or math.isclose(ev['metrics'][k], v, rel_tol=1e-5, abs_tol=1e-7), k
    own = ev['trajectory']   # the student's own trajectory, computed on rank 0 from the rows evaluate_student keeps
    assert own['student_lag'] == ref['trajectory'].pop('student_lag').tolist() and own['false_commit_runs'] == ref['trajectory']['false_commit_runs']
    same = lambda a, b: a == b or (math.isnan(a) and math.isnan(b))
    assert all(same(a, b) for a, b in zip(own['mse_since_false_commit'], ref['trajectory']['mse_since_false_commit'], strict=True))
    assert same(own['mse_clean_runs'], ref['trajectory']['mse_clean_runs'])
    # the teacher's own metrics
    tf = {s: teacher_forced(llada, d['test'].prompts[:LIMIT]) for s, d in sp.items()}
    assert res['teacher']['accuracy'] == score_suites(sp, 'test', {s: t.answers for s, t in tf.items()}, LIMIT)
    assert res['teacher']['lag'] == torch.cat([stability_lag(t.trace) for t in tf.values()]).tolist()
    own = pool_counts([frontier_counts(t, t.logp) for t in tf.values()])
    assert all(math.isclose(res['teacher']['metrics'][k], v, rel_tol=1e-5, abs_tol=1e-7) for k, v in own.items() if not math.isnan(v))
    # lm-eval with the documents split over the ranks
    assert res['lmeval'] == run_lmeval(student, limit=LMEVAL, out=tmp_path/'lm1', log_samples=False)['accuracy']


# The whole pipeline, `fair-calib run`, under torchrun: two gloo ranks write the results of one process.
RUN = ['--threads', '1', 'run', '--methods', 'rtn', 'fair', '--limit', '4', '--n-calib', '4', '--n-lag', '2', '--epochs', '1', '--n-probe', '8']
FLOAT_SUMS = ('kl', 'mean_disagree')   # sums of float32 values, whose order differs between one and two ranks


def _same(a, b, path=()):
    "Every leaf of `a` equals `b`'s; where a key of the path starts with one of FLOAT_SUMS, to float32 summation order."
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a: _same(a[k], b[k], path + (k,))
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)): _same(x, y, path + (i,))
    elif isinstance(a, float) and any(str(k).startswith(FLOAT_SUMS) for k in path):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7), (path, a, b)
    else: assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), (path, a, b)


def _drop_times(res):
    for r in res['runs']: r.pop('times'); [b.pop('seconds') for b in r['calib_blocks']]
    return {k: res[k] for k in ('config', 'model', 'quant', 'eval_split', 'teacher', 'summary', 'runs')}


@pytest.mark.slow
def test_pipeline_two_ranks_equal_one_process(tmp_path):
    "`torchrun --nproc_per_node 2 -m fair_calib_nb run ...` writes the results.json of the same run in one process (about 80 s)."
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'TOKENIZERS_PARALLELISM': 'false'}
    one, two = tmp_path/'one', tmp_path/'two'
    p1 = subprocess.run([sys.executable, '-m', 'fair_calib_nb', *RUN, '--out', str(one)], env=env, capture_output=True, text=True, timeout=600)
    assert p1.returncode == 0, p1.stderr[-6000:]
    p2 = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'fair_calib_nb', *RUN,
                         '--out', str(two)], env=env, capture_output=True, text=True, timeout=600)
    assert p2.returncode == 0, p2.stdout[-3000:] + p2.stderr[-6000:]
    a, b = (json.loads((d/'results.json').read_text()) for d in (one, two))
    assert [r['method'] for r in b['runs']] == ['rtn', 'fair'] and b['runs'][1]['lag'] is not None
    _same(_drop_times(a), _drop_times(b))
    # the same files, written once (by rank 0): one invocation in timings.json, rank 0's student and prior
    files = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob('*'))
    assert files(one) == files(two) and len(json.loads((two/'timings.json').read_text())) == 1
    from safetensors.torch import load_file
    for m in ('rtn-s0', 'fair-s0'):
        wa, wb = (load_file(d/'models'/m/'model.safetensors') for d in (one, two))
        assert set(wa) == set(wb) and all(torch.equal(wa[k], wb[k]) for k in wa), m
    pa, pb = (json.loads((d/'priors'/'fair-s0.json').read_text()) for d in (one, two))
    assert {k: v for k, v in pa.items() if k != 'provenance'} == {k: v for k, v in pb.items() if k != 'provenance'}
    assert p2.stderr.count('teacher mean accuracy') == 1 and p2.stderr.count('wrote ') == 1   # rank 0 alone reports
