"""Streaming frontier metrics against the whole-tensor computation they replace (kept verbatim below as the reference),
on both shipped models: exact equality of every count, with the teacher's log-probs kept or recomputed per chunk, any chunk."""
import math, pytest, torch
from fair_calib_nb import evaluate as E
from fair_calib_nb.evaluate import (TeacherForced, window_logprobs, state_logprobs, pool_counts, frontier_counts, stream_counts,
                                    teacher_forced, evaluate_student, own_trajectory_metrics, frontier_memory, problem_chunks)
from fair_calib_nb.decode import Trace, DecodeConfig, default_decoding, generate
from fair_calib_nb.frontier import answer_positions, block_index, stability_lag
from fair_calib_nb.quant import quantize_model, deploy_model
from fair_calib_nb.tasks import make_splits

# ---------------------------------------------------------------- the evaluation before streaming (reference only)

def old_teacher_forced(teacher, prompts, cfg=None, seed=0):
    g = generate(teacher, prompts, cfg or default_decoding(teacher), seed=seed, logprobs=True, progress=False)
    return TeacherForced(teacher.name, g.trace, state_logprobs(teacher, g.trace), teacher.tokenizer.eos_token_id, g.answers)

def old_frontier_counts(tf, s_logp):
    tr = tf.trace; s_arg = s_logp.argmax(-1)
    hits = tr.frontier(); flips = hits & (s_arg != tf.logp.argmax(-1))
    cs = tr.commit_step[:, None, :]; post = (cs < torch.arange(tr.steps)[None, :, None]) & (cs >= 0)
    n_post, n_dis = post.sum(1), ((s_arg != tr.tokens[:, None, :]) & post).sum(1)
    valid = n_post > 0; rate = n_dis / n_post.clamp_min(1); never = (n_dis == n_post) & valid
    kl = (tf.logp.exp() * (tf.logp - s_logp)).sum(-1); masked = tr.masked()
    ans, blk = answer_positions(tr, tf.eos_id)[:, None, :], block_index(tr)
    args = (flips, hits, kl, masked, rate, valid, never)
    out = {**E._scoped('', torch.ones_like(ans), *args), **E._scoped('_answer', ans, *args)}
    for k in range(int(blk.max()) + 1): out.update(E._scoped(f'_answer_b{k}', ans & (blk == k)[None, None], *args))
    return {n: (float(a), float(b)) for n, (a, b) in out.items()}

def old_own_trajectory(teacher, student, trace):
    tr = trace; s_lp, t_lp = state_logprobs(student, tr), window_logprobs(teacher, tr)
    mse = ((s_lp.exp() - t_lp.exp()) ** 2).sum(-1)
    masked = tr.masked(); mse_t = (mse * masked).sum(2) / masked.sum(2).clamp_min(1)
    false = tr.frontier() & (tr.tokens[:, None, :] != t_lp.argmax(-1))
    has = false.any(2).any(1); first = torch.where(false.any(2), torch.arange(tr.steps)[None], tr.steps).min(1).values
    amp = [mse_t[has & (first + k < tr.steps), (first + k)[has & (first + k < tr.steps)]].mean().item()
           if (has & (first + k < tr.steps)).any() else float('nan') for k in range(tr.steps)]
    return dict(false_commit_runs=has.float().mean().item(), mse_since_false_commit=amp,
                mse_clean_runs=mse_t[~has].mean().item() if (~has).any() else float('nan'), student_lag=stability_lag(tr))

def old_evaluate(teacher, student, splits, limit, n_lag):
    cfg = default_decoding(teacher)
    gens = E.decode_suites(student, splits, 'test', cfg, limit, progress=False, logprobs=n_lag > 0)
    ans = {s: g.answers for s, g in gens.items()}; acc = E.score_suites(splits, 'test', ans, limit)
    tf = {s: old_teacher_forced(teacher, d['test'].prompts[:limit], cfg) for s, d in splits.items()}
    counts = {s: old_frontier_counts(t, window_logprobs(student, t.trace)) for s, t in tf.items()}
    agree = E.answer_agreement(ans, {s: t.answers for s, t in tf.items()})
    own = old_own_trajectory(teacher, student, Trace.cat([g.trace[:n_lag] for g in gens.values()])) if n_lag else None
    return dict(accuracy=acc, agreement=agree, frontier_counts=counts, self=[old_frontier_counts(t, t.logp) for t in tf.values()],
                metrics=dict(acc_mean=acc['mean'], agreement=agree['mean'], **{f'acc_{s}': acc[s] for s in splits},
                             **pool_counts(list(counts.values()))), trajectory=own)

def same(a, b):
    "Exact equality, NaN equal to NaN, tensors by `torch.equal`."
    if isinstance(a, dict): return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor): return torch.equal(a, b)
    if isinstance(a, float) and math.isnan(a): return isinstance(b, float) and math.isnan(b)
    return a == b

# ---------------------------------------------------------------- new against old

@pytest.fixture(scope='module')
def student_and_ref(dllm):
    student = deploy_model(quantize_model(dllm, 'W4A4'))
    return student, old_evaluate(dllm, student, make_splits(0), 24, n_lag=6)

@pytest.mark.parametrize('keep,chunk,cache', [(True, E.EVAL_CHUNK, True), (False, 5, True), (True, 7, False)])
def test_evaluate_student_identical_to_whole_tensor(dllm, student_and_ref, keep, chunk, cache, monkeypatch):
    student, ref = student_and_ref
    if not keep: monkeypatch.setattr(E, 'KEEP_LOGP_BYTES', 0)      # nothing kept: teacher and student log-probs recomputed per chunk
    row = evaluate_student(dllm, student, make_splits(0), limit=24, progress=False, n_lag=6, chunk=chunk, cache=cache)
    assert ref['frontier_counts']['sort']['flip_rate'][0] > 0 or ref['frontier_counts']['walk']['flip_rate'][0] > 0
    for k in ('accuracy', 'agreement', 'frontier_counts', 'metrics', 'trajectory'): assert same(row[k], ref[k]), k

def test_teacher_forced_lean_and_self_counts(dllm):
    prompts = make_splits(0)['walk']['test'].prompts[:20]
    old = old_teacher_forced(dllm, prompts)
    kept, lean = teacher_forced(dllm, prompts), teacher_forced(dllm, prompts, keep_bytes=0, chunk=3)
    assert kept.logp is not None and lean.logp is None and lean.trace.logp is None
    assert torch.equal(kept.logp, old.logp) and torch.equal(lean.argmax, old.logp.argmax(-1)) and lean.answers == old.answers
    for t in (kept, lean):       # the teacher against itself, as the pipeline's reference reports it
        assert same(frontier_counts(t), old_frontier_counts(old, old.logp)) and same(stream_counts(t), frontier_counts(t))
    assert same(frontier_counts(kept, kept.logp), old_frontier_counts(old, old.logp))
    with pytest.raises(ValueError, match='use stream_counts'): frontier_counts(lean, old.logp)
    with pytest.raises(ValueError, match='pass the teacher model'): stream_counts(lean, dllm)

def test_own_trajectory_chunked(dllm):
    s = quantize_model(dllm, 'W4A4'); tr = generate(s, make_splits(0)['sort']['test'].prompts[:10], logprobs=True, progress=False).trace
    ref = old_own_trajectory(dllm, s, tr)
    for chunk in (1, 3, 10):
        assert same(own_trajectory_metrics(dllm, s, trace=tr, chunk=chunk), ref)
    lean = generate(s, make_splits(0)['sort']['test'].prompts[:10], record=True, progress=False).trace   # no kept log-probs
    assert lean.logp is None and same(own_trajectory_metrics(dllm, s, trace=lean, chunk=4), ref)

# ---------------------------------------------------------------- memory model and chunks

def test_problem_chunks_and_errors():
    assert problem_chunks(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)] and problem_chunks(2, 5) == [slice(0, 2)]
    for bad in (0, -1, 2.5, None):
        with pytest.raises(ValueError, match='chunk must be'): problem_chunks(4, bad)

def test_frontier_memory_real_sizes():
    cfg = DecodeConfig()                                            # the shipped window: 24 positions, 12 steps
    m = frontier_memory(126464, cfg, 500, chunk=4)
    assert m['per_problem'] == 4 * 12 * 24 * 126464 and m['whole'] == 500 * m['per_problem'] and m['kept'] == 0
    assert m['chunk'] >= 5 * 4 * m['per_problem']                   # at least the KL's temporaries of 4 problems
    assert m['total'] < m['whole'] / 20                             # bounded by the chunk, not the 500 problems
    assert frontier_memory(126464, cfg, 5000, chunk=4)['total'] == m['total']
    small = frontier_memory(47, cfg, 500)                           # the shipped models: the teacher's log-probs stay in memory
    assert small['kept'] == small['whole'] > 0 and small['total'] > small['kept']
