"Stage II across modules: transforms, folding, GPTQ, prior weighting, Dream's shift, checkpoints and resume, students on disk."
import dataclasses, subprocess, sys, pytest, torch
import fair_calib_nb.calib as C
from fair_calib_nb.calib import *
from fair_calib_nb.prior import Prior, PriorConfig, build_prior
from fair_calib_nb.quant import QuantLinear, quantize_model
from fair_calib_nb.student import save_student, load_student
from fair_calib_nb.models import save_tokenizer
from fair_calib_nb.tasks import GEN_LENGTH

def _logits(d, pairs, n=12):
    b = calib_data(d, pairs[0][:n], pairs[1][:n])
    with torch.no_grad(): return d.logits(b.x, b.attention_mask)

@pytest.fixture(scope='module')
def prior(llada, pairs): return build_prior(llada, pairs[0], prior_config('fair', PriorConfig(n_probe=24)), progress=False)

def test_zero_epochs_identity_equals_rtn(llada, pairs):
    rtn = calibrate(llada, *pairs, CalibConfig(method='rtn'), progress=False)
    flat0 = calibrate(llada, *pairs, CalibConfig(method='flatquant', epochs=0, transform_init='identity', learn_clips=False), progress=False)
    assert torch.allclose(_logits(rtn, pairs), _logits(flat0, pairs), atol=1e-4)

def test_folding_and_packing_are_exact(dllm, pairs):
    "Unfolded fake-quant block == folded block with online P == packed bitsandbytes block."
    cfg = CalibConfig(method='flatquant', epochs=1, deploy=False, transform_init='orthogonal', smooth=True)
    st = quantize_model(dllm, 'W4A4'); b = calib_data(dllm, *pairs)
    h, am = dllm.embed(b.x).detach(), b.attention_mask
    wrapped = prepare_block(st, dllm, 0, h, am, cfg)
    with torch.no_grad():
        for f in wrapped:
            if f.smooth is not None: f.smooth.log_s.add_(0.05 * torch.randn_like(f.smooth.log_s))
            f.transform.P1.add_(0.05 * torch.randn_like(f.transform.P1)); f.ql.weight_clip_raw.fill_(1.5)
        before = st.call_block(st.blocks[0], h, am)
    finalize_block(st, 0, wrapped, cfg)
    with torch.no_grad(): folded = st.call_block(st.blocks[0], h, am)
    # equal up to float rounding, except where that rounding moves a 4-bit activation across a grid boundary (rare, local)
    rel = (folded - before).abs() / before.abs().max()
    assert rel.median() < 1e-5 and (rel > 1e-3).float().mean() < 1e-3, (rel.median(), (rel > 1e-3).float().mean(), rel.max())
    for q in st.blocks[0].modules():
        if isinstance(q, QuantLinear): q.deploy()
    with torch.no_grad(): packed = st.call_block(st.blocks[0], h, am)
    assert (packed - folded).abs().max() / folded.abs().max() < 1e-3

def test_determinism_and_teacher_untouched(llada, pairs):
    before = _logits(llada, pairs); cfg = CalibConfig(method='flatquant', epochs=1, seed=3)
    a, b = (calibrate(llada, *pairs, cfg, progress=False) for _ in range(2))
    assert torch.equal(_logits(a, pairs), _logits(b, pairs)) and torch.equal(_logits(llada, pairs), before)

def test_all_ones_prior_equals_flatquant(llada, pairs):
    cfg = dict(epochs=1, batch_size=12, seed=3)
    flat = calibrate(llada, *pairs, CalibConfig(method='flatquant', **cfg), progress=False)
    fair = calibrate(llada, *pairs, CalibConfig(method='fair', **cfg), prior=Prior.uniform(GEN_LENGTH, prompt_floor=1.0), progress=False)
    assert torch.equal(_logits(flat, pairs), _logits(fair, pairs))

def test_prior_weights_floor_mean_and_null(llada, pairs, prior):
    d = calib_data(llada, *pairs); P = d.prompt_length; am = d.attention_mask.bool()
    w = loss_weights(llada, CalibConfig(method='fair'), d, prior)
    assert torch.allclose(w[:, P:].mean(1), torch.ones(len(d))) and torch.allclose(w[:, :P][am[:, :P]], torch.tensor(0.1))
    assert (w[~am] == 0).all()
    wp = loss_weights(llada, CalibConfig(method='fair', permute=True), d, prior)      # same values, other positions
    assert torch.equal(wp[:, P:].sort(1).values, w[:, P:].sort(1).values) and not torch.equal(wp, w)
    w1 = loss_weights(llada, CalibConfig(method='flatquant', prompt_floor=0.1), d)    # the same-floor control
    assert torch.equal(w1[:, :P], w[:, :P])

def test_dream_weights_sit_on_the_deciding_hidden_state(dream, pairs):
    "Dream decides token i from hidden state i-1: a weight given to window position i lands on state i-1."
    d = calib_data(dream, *pairs); P = d.prompt_length
    tok = torch.ones(d.x.shape); tok[:, P + 5] = 7.0
    w = hidden_weights(dream, tok * d.attention_mask, 0.1)
    assert (w[:, P + 4] == 7).all() and (w[:, P + 5] == 1).all()
    # and that state is the one that predicts it: mask position P+5 and read it from row P+4 of the raw logits
    x = d.x.clone(); x[:, P + 5] = dream.mask_id
    from fair_calib_nb.models import dream_attention_inputs
    m, pos = dream_attention_inputs(d.attention_mask)
    with torch.no_grad(): raw = dream.model(x, attention_mask=m, position_ids=pos).logits
    assert (raw[:, P + 4].argmax(-1) == d.x[:, P + 5]).float().mean() >= (raw[:, P + 5].argmax(-1) == d.x[:, P + 5]).float().mean()

@pytest.mark.parametrize('method', ['rtn', 'flatquant'])
def test_gptq_weights_pack_exactly_and_uniform_is_plain(llada, pairs, method):
    st = calibrate(llada, *pairs, CalibConfig(method=method, epochs=1, weights='gptq', deploy=False), progress=False)
    from fair_calib_nb.quant import fake_quant_4bit
    for q in (m for m in st.model.modules() if isinstance(m, QuantLinear)):
        assert torch.equal(fake_quant_4bit(q.weight, 'nf4', 64), q.weight) and q.weight_clip_raw is None
    a = calibrate(llada, *pairs, CalibConfig(method='rtn', weights='gptq'), progress=False)
    d = calib_data(llada, *pairs)
    b = calibrate(llada, *pairs, CalibConfig(method='rtn', weights='gptq'), weights=d.attention_mask.float() * 3.0, progress=False)
    assert torch.equal(_logits(a, pairs), _logits(b, pairs))          # any uniform weight is plain GPTQ, bit for bit

def test_gptq_keeps_full_precision_layers_and_refuses_bad_widths(llada, pairs):
    st = calibrate(llada, *pairs, CalibConfig(method='rtn', weights='gptq', keep=('*.blocks.0.*',)), progress=False)
    assert type(st.blocks[0].q_proj) is torch.nn.Linear and st.calib_log['blocks'][0]['gptq']['q_proj'] == 'kept in full precision'
    from fair_calib_nb.gptq import gptq_quantize
    with pytest.raises(ValueError, match='does not divide the input dim 96 of x'): gptq_quantize(torch.randn(4, 96), torch.eye(96), 'nf4', name='x')

def test_resume_equals_uninterrupted_and_survives_a_kill(llada, pairs, prior, tmp_path, monkeypatch):
    cfg = CalibConfig(method='fair', epochs=1, batch_size=12, input_mode='quant')
    full = calibrate(llada, *pairs, cfg, prior=prior, progress=False)
    orig = C.save_student
    def stop(s, path, **kw):
        orig(s, path, **kw)
        if s.calib_log['done'] == 2: raise KeyboardInterrupt
    monkeypatch.setattr(C, 'save_student', stop)
    with pytest.raises(KeyboardInterrupt): calibrate(llada, *pairs, cfg, prior=prior, progress=False, checkpoint=tmp_path/'ck')
    monkeypatch.undo()
    with pytest.raises(ValueError, match='unfinished calibration'): load_student(tmp_path/'ck')
    with pytest.raises(ValueError, match='other settings'):
        calibrate(llada, *pairs, dataclasses.replace(cfg, lr=1e-3), prior=prior, progress=False, checkpoint=tmp_path/'ck', resume=True)
    (tmp_path/'ck').rename(tmp_path/'ck.old'); import shutil; shutil.copytree(tmp_path/'ck.old', tmp_path/'ck.tmp')   # killed mid-swap
    res = calibrate(llada, *pairs, cfg, prior=prior, progress=False, checkpoint=tmp_path/'ck', resume=True)
    assert torch.equal(_logits(full, pairs), _logits(res, pairs))
    assert [b['mse'] for b in full.calib_log['blocks']] == [b['mse'] for b in res.calib_log['blocks']]

@pytest.mark.slow
@pytest.mark.parametrize('method,scheme', [('fair', 'W4A4'), ('quarot', 'W4A4-int4'), ('decision', 'W4A4-fp4'), ('rtn', 'W4A16')])
def test_students_reload_in_a_fresh_process(dllm, pairs, tmp_path, method, scheme):
    p = build_prior(dllm, pairs[0], prior_config(method, PriorConfig(n_probe=16)), progress=False) if method in PRIOR_METHODS else None
    st = calibrate(dllm, *pairs, CalibConfig(method=method, quant=scheme, epochs=1), prior=p, progress=False)
    save_student(st, tmp_path/'s')
    x = calib_data(dllm, *pairs).x[:6]; torch.save(x, tmp_path/'x.pt')
    with torch.no_grad(): torch.save(st.model(x).logits, tmp_path/'want.pt')
    code = ("import torch, fair_calib_nb; from transformers import AutoModel; torch.set_num_threads(1); "
            f"m = AutoModel.from_pretrained(r'{tmp_path/'s'}'); x = torch.load(r'{tmp_path/'x.pt'}'); "
            f"assert torch.equal(m(x).logits, torch.load(r'{tmp_path/'want.pt'}')); m.save_pretrained(r'{tmp_path/'again'}')")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-2000:]
    with pytest.raises(FileNotFoundError, match='has no tokenizer'): load_student(tmp_path/'again')   # model.save_pretrained: weights only
    save_tokenizer(st, tmp_path/'again'); back = load_student(tmp_path/'again')
    with torch.no_grad(): assert torch.equal(back.model(x).logits, torch.load(tmp_path/'want.pt'))
    assert back.calib_log['config']['method'] == method and (p is None or torch.equal(back.prior.window, p.window))

def test_heldout_loss_recorded_per_epoch_on_rows_never_trained(llada, pairs):
    "With a held-out share, each block logs the held-out and training-row loss at the start (epoch 0) and after every epoch."
    st = calibrate(llada, *pairs, CalibConfig(method='flatquant', epochs=2, batch_size=8, holdout=0.25), progress=False)
    tr, ho = split_rows(24, 0.25)
    assert st.calib_log['rows'] == dict(train=18, heldout=6) and set(tr.tolist()).isdisjoint(ho.tolist()) and ho.tolist() == [3, 7, 11, 15, 19, 23]
    for b in st.calib_log['blocks']:
        assert len(b['heldout_loss']) == len(b['train_loss']) == 3 and len(b['epoch_loss']) == 2 and b['heldout_mse'] > 0
    flat = calibrate(llada, *pairs, CalibConfig(method='flatquant', epochs=1), progress=False)   # FlatQuant's recipe: nothing held out
    assert flat.calib_log['rows'] == dict(train=24, heldout=0) and flat.calib_log['blocks'][0]['heldout_loss'] == []
    with pytest.raises(ValueError, match='holds none out'): calibrate(llada, pairs[0][:2], pairs[1][:2], CalibConfig(holdout=0.2), progress=False)
    with pytest.raises(ValueError, match='holdout must be in'): CalibConfig(holdout=1.0)
    with pytest.raises(ValueError, match='unknown recipe'): CalibConfig(recipe='fast')

def test_keep_best_never_ends_above_its_start(llada, pairs):
    "A learning rate that overshoots: without keep-best some block ends above its start; with it none does (held-out rows)."
    kw = dict(method='flatquant', epochs=3, batch_size=6, lr=0.05, holdout=0.25, seed=1)
    bad = calibrate(llada, *pairs, CalibConfig(**kw, keep_best=False), progress=False).calib_log['blocks']
    good = calibrate(llada, *pairs, CalibConfig(**kw, keep_best=True), progress=False).calib_log['blocks']
    assert any(min(b['heldout_loss']) < b['heldout_loss'][-1] for b in bad)            # the last epoch is not always the best
    for b in good:
        assert b['heldout_loss'][b['best_epoch']] == min(b['heldout_loss'])
        assert b['heldout_mse'] <= b['heldout_loss'][0] * 1.01                           # folded and rounded: within float noise of the kept epoch
    assert CalibConfig(recipe='converge').keep_best and not CalibConfig().keep_best and CalibConfig(recipe='converge', lr=1e-3).lr == 1e-3

def test_recipe_is_deterministic_given_seed_and_order_seed_alone_moves_it(llada, pairs):
    kw = dict(method='flatquant', recipe='converge', epochs=1, batch_size=8)
    a, b = (calibrate(llada, *pairs, CalibConfig(**kw, seed=2), progress=False) for _ in range(2))
    assert torch.equal(_logits(a, pairs), _logits(b, pairs)) and a.calib_log['blocks'][0]['heldout_loss'] == b.calib_log['blocks'][0]['heldout_loss']
    c = calibrate(llada, *pairs, CalibConfig(**kw, seed=5, order_seed=2), progress=False)   # other seed, same row order: same student
    assert torch.equal(_logits(a, pairs), _logits(c, pairs))

def test_quarot_rotation_signs_seeded_and_reloaded(llada, pairs, tmp_path):
    "rotation_signs: QuaRot's randomized Hadamard, one student per seed (plain QuaRot ignores the seed), kept through save/load."
    q = lambda **kw: calibrate(llada, *pairs, CalibConfig(method='quarot', **kw), progress=False)
    plain, a, a2, b = q(seed=1), q(rotation_signs=True, seed=1), q(rotation_signs=True, seed=1), q(rotation_signs=True, seed=2)
    assert torch.equal(_logits(plain, pairs), _logits(q(seed=2), pairs))
    la, lb = _logits(a, pairs), _logits(b, pairs)
    assert torch.equal(la, _logits(a2, pairs)) and not torch.equal(la, lb) and not torch.equal(la, _logits(plain, pairs))
    assert torch.equal(la, _logits(load_student(save_student(a, tmp_path/'rs')), pairs))

def test_rotation_trials_keep_the_lowest_student_kl(llada, pairs, tmp_path):
    "rotation_trials=K: K sign draws (seeds seed*K..seed*K+K-1), the student of lowest student_kl on the calibration states kept."
    kw = dict(method='quarot', rotation_signs=True)
    best = calibrate(llada, *pairs, CalibConfig(**kw, rotation_trials=3, seed=1), progress=False, checkpoint=tmp_path/'ck')
    trials = best.calib_log['rotation_trials']; kls = [t['output_kl'] for t in trials]
    assert [t['seed'] for t in trials] == [3, 4, 5] and len(set(kls)) == 3
    pick = min(trials, key=lambda t: t['output_kl'])['seed']; assert best.calib_log['rotation_seed'] == pick
    states = calib_data(llada, *pairs, 'states', 1)
    one = calibrate(llada, *pairs, CalibConfig(**kw, seed=pick), progress=False)
    assert torch.equal(_logits(best, pairs), _logits(one, pairs)) and student_kl(llada, one, states) == min(kls)
    assert torch.equal(_logits(load_student(tmp_path/'ck'), pairs), _logits(best, pairs))
    assert student_kl(llada, llada, states) == 0
    with pytest.raises(ValueError, match='rotation_signs=True'): CalibConfig(method='quarot', rotation_trials=2)
    with pytest.raises(ValueError, match='rotation_trials must be an integer'): CalibConfig(rotation_trials=0)
    with pytest.raises(ValueError, match='masked answer positions'): student_kl(llada, one, calib_data(llada, *pairs))

def test_student_kl_weights_and_position_kl(llada, pairs):
    "student_kl is the (weighted) mean of position_kl over the masked answer positions; zero weights everywhere are refused."
    st = calibrate(llada, *pairs, CalibConfig(method='quarot', rotation_signs=True, seed=1), progress=False)
    states = calib_data(llada, *pairs, 'states', 1); kl = position_kl(llada, st, states)
    m = states.x == llada.mask_id; m[:, :states.prompt_length] = False
    assert (kl[~m] == 0).all() and (kl[m] > -1e-6).all() and kl[m].sum() > 0   # float rounding: tiny negatives
    assert abs(student_kl(llada, st, states) - float(kl[m].mean())) < 1e-6
    assert abs(student_kl(llada, st, states, weights=torch.full(kl.shape, 3.0)) - student_kl(llada, st, states)) < 1e-6
    w = torch.zeros(kl.shape); w[0] = 1.0   # only the first row counts
    assert abs(student_kl(llada, st, states, weights=w) - float(kl[0][m[0]].mean())) < 1e-6
    with pytest.raises(ValueError, match='weights are zero'): student_kl(llada, st, states, weights=torch.zeros(kl.shape))

def test_output_kl_objective_keeps_best_and_leaves_the_teacher(llada, pairs):
    "objective='kl': held-out KL at masked positions per epoch, keep-best on it, the teacher's weights and requires_grad unchanged."
    grads, before = [p.requires_grad for p in llada.model.parameters()], _logits(llada, pairs)
    kw = dict(method='flatquant', data='random_mask', epochs=2, batch_size=8, holdout=0.25, keep_best=True, seed=1)
    kl = calibrate(llada, *pairs, CalibConfig(**kw, objective='kl'), progress=False)
    mse = calibrate(llada, *pairs, CalibConfig(**kw), progress=False)
    for b, m in zip(kl.calib_log['blocks'], mse.calib_log['blocks']):
        assert len(b['heldout_loss']) == 3 and b['heldout_loss'][b['best_epoch']] == min(b['heldout_loss'])
        assert b['heldout_loss'][0] != m['heldout_loss'][0]          # another loss on the same rows and start (KL, not block MSE)
    assert [p.requires_grad for p in llada.model.parameters()] == grads and torch.equal(_logits(llada, pairs), before)
    assert not torch.equal(_logits(kl, pairs), _logits(mse, pairs))
    with pytest.raises(ValueError, match='clean data has none'): CalibConfig(objective='kl')
