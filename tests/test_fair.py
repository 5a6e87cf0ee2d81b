"FAIR-Calib Stage II: prior-weighted calibration, save/load with provenance, checkpoints and resume, bad priors."
import copy, dataclasses, pytest, torch
import fair_calib_nb.calib as C
from fair_calib_nb.calib import *
from fair_calib_nb.prior import Prior, PriorConfig, build_prior, model_fingerprint
from fair_calib_nb.models import DLLM
from fair_calib_nb.tasks import make_splits, GEN_LENGTH

SP = make_splits(0)
P = [p for s in SP.values() for p in s['calib'].prompts[:12]]
A = [a for s in SP.values() for a in s['calib'].answers[:12]]

def _logits(d):
    b = calib_batch(d, P, A)
    with torch.no_grad(): return d.logits(b['x'], b['attention_mask'])

@pytest.fixture(scope='module')
def prior(llada): return build_prior(llada, P, PriorConfig(n_probe=24), progress=False)

def test_prior_expansion_floor_and_mean(llada, prior):
    b = calib_batch(llada, P, A); w = loss_weights(llada, CalibConfig(method='fair'), b, prior=prior)
    Pl = b['prompt_length']; am = b['attention_mask'].bool()
    assert torch.allclose(w[:, Pl:].mean(1), torch.ones(len(P)))                    # mean 1 over the answer window
    assert torch.allclose(w[:, :Pl][am[:, :Pl]], torch.tensor(prior.config['prompt_floor']))  # the floor on real prompt tokens
    assert (w[~am] == 0).all() and prior.spread > 1.05                               # padding weighs nothing; the prior has shape

def test_fair_with_all_ones_prior_equals_flatquant(llada):
    cfg = dict(epochs=1, batch_size=12, seed=3)
    flat = calibrate(llada, P, A, CalibConfig(method='flatquant', **cfg), progress=False)
    fair = calibrate(llada, P, A, CalibConfig(method='fair', **cfg), prior=Prior.uniform(GEN_LENGTH, prompt_floor=1.0), progress=False)
    assert torch.equal(_logits(flat), _logits(fair))
    assert [b['mse'] for b in flat.calib_log['blocks']] == [b['mse'] for b in fair.calib_log['blocks']]

def test_fair_differs_from_flatquant_and_is_deterministic(llada, prior):
    cfg = CalibConfig(method='fair', epochs=1, batch_size=12, seed=1)
    a, b = (calibrate(llada, P, A, cfg, prior=prior, progress=False) for _ in range(2))
    flat = calibrate(llada, P, A, dataclasses.replace(cfg, method='flatquant'), progress=False)
    la = _logits(a); assert torch.equal(la, _logits(b)) and not torch.equal(la, _logits(flat))

@pytest.mark.parametrize('method,fmt', [('fair', 'nf4'), ('quarot', 'int4'), ('flatquant', 'fp4')])
def test_save_load_round_trip(llada, prior, tmp_path, method, fmt):
    st = calibrate(llada, P, A, CalibConfig(method=method, epochs=1, w_format=fmt, smooth=method == 'fair'),
                   prior=prior if method == 'fair' else None, progress=False)
    back = load_calibrated(save_calibrated(st, tmp_path/'m'))
    assert torch.equal(_logits(st), _logits(back))
    assert back.calib_log['config']['method'] == method and back.quant_config == st.quant_config
    if method == 'fair': assert torch.equal(back.prior.window, prior.window) and back.prior.provenance == prior.provenance
    with pytest.raises(ValueError, match='no calib_log'): save_calibrated(C.quantize_model(llada, 'W4A4'), tmp_path/'x')

def _interrupt_at(block):
    orig = C.train_block
    def f(*a, **k):
        if a[7] == f'block {block}': raise KeyboardInterrupt
        return orig(*a, **k)
    return f

@pytest.mark.parametrize('input_mode', ['fp', 'quant'])
def test_resume_equals_uninterrupted(llada, prior, tmp_path, monkeypatch, input_mode):
    cfg = CalibConfig(method='fair', epochs=1, batch_size=12, input_mode=input_mode)
    full = calibrate(llada, P, A, cfg, prior=prior, progress=False)
    monkeypatch.setattr(C, 'train_block', _interrupt_at(2))
    with pytest.raises(KeyboardInterrupt): calibrate(llada, P, A, cfg, prior=prior, progress=False, checkpoint=tmp_path/'ck')
    monkeypatch.undo()
    with pytest.raises(ValueError, match='unfinished calibration'): load_calibrated(tmp_path/'ck')
    with pytest.raises(ValueError, match='other settings'):          # another config never overwrites the checkpoint
        calibrate(llada, P, A, dataclasses.replace(cfg, lr=1e-3), prior=prior, progress=False, checkpoint=tmp_path/'ck', resume=True)
    res = calibrate(llada, P, A, cfg, prior=prior, progress=False, checkpoint=tmp_path/'ck', resume=True)
    assert torch.equal(_logits(full), _logits(res))
    assert [b['mse'] for b in full.calib_log['blocks']] == [b['mse'] for b in res.calib_log['blocks']]
    assert torch.equal(_logits(load_calibrated(tmp_path/'ck')), _logits(full))

def test_ablation_priors(llada):
    _, tr = build_prior(llada, P, PriorConfig(n_probe=24), progress=False, return_trace=True)
    pr = {m: Prior.from_traces(tr, prior_config(m)) for m in PRIOR_METHODS if m != 'fair_deployed'}
    assert torch.allclose(pr['frontier_only'].reliability_part, torch.zeros(GEN_LENGTH))
    assert torch.allclose(pr['reliability_only'].frontier_part, torch.zeros(GEN_LENGTH))
    # blocks commit in order, so the early boost favours the first block and the late schedule the last
    w = {m: pr[m].frontier_part.reshape(3, 8).mean(1) for m in ('fair', 'fair_constant', 'fair_late')}
    assert w['fair'][0] > w['fair_constant'][0] > w['fair_late'][0] and w['fair'][2] < w['fair_late'][2]
    assert prior_config('fair_deployed').rule == 'deployed'
    with pytest.raises(ValueError, match='uses no prior'): prior_config('flatquant')

def test_bad_priors(llada, dream, prior):
    b = calib_batch(llada, P, A)
    with pytest.raises(ValueError, match='weighs the loss by a Stage I prior'): calibrate(llada, P, A, CalibConfig(method='fair'), progress=False)
    other = build_prior(dream, P, PriorConfig(n_probe=8), progress=False)
    with pytest.raises(ValueError, match="built on model 'tiny-dream'"): loss_weights(llada, CalibConfig(method='fair'), b, prior=other)
    twin = DLLM(copy.deepcopy(llada.model), llada.tokenizer, llada.name)
    with torch.no_grad(): next(twin.model.parameters()).add_(1e-3)
    assert model_fingerprint(twin) != model_fingerprint(llada)
    with pytest.raises(ValueError, match='other weights'): loss_weights(twin, CalibConfig(method='fair'), b, prior=prior)
    tok = copy.deepcopy(prior); tok.provenance['tokenizer_vocab'] += 1
    with pytest.raises(ValueError, match='another tokenizer'): loss_weights(llada, CalibConfig(method='fair'), b, prior=tok)
    short = Prior(prior.window[:16], prior.frontier_part[:16], prior.reliability_part[:16], prior.config, prior.provenance)
    with pytest.raises(ValueError, match='window of 16 positions'): loss_weights(llada, CalibConfig(method='fair'), b, prior=short)
    with pytest.raises(ValueError, match='needs a prior built with lambda1=0.0'): loss_weights(llada, CalibConfig(method='frontier_only'), b, prior=prior)
    with pytest.raises(ValueError, match='unknown method'): CalibConfig(method='gptq')

def test_masked_calibration_data(llada):
    clean = calib_batch(llada, P, A)
    for mode in ('random_mask', 'block_mask'):
        a, b = calib_batch(llada, P, A, data=mode, seed=1), calib_batch(llada, P, A, data=mode, seed=1)
        Pl = a['prompt_length']; m = a['x'] == llada.mask_id
        assert torch.equal(a['x'], b['x']) and m[:, Pl:].any() and not m[:, :Pl].any()
        assert torch.equal(a['x'][~m], clean['x'][~m])                       # only masks were written
    st = calibrate(llada, P, A, CalibConfig(method='flatquant', epochs=1, data='block_mask'), progress=False)
    assert st.calib_log['config']['data'] == 'block_mask'
    with pytest.raises(ValueError, match='unknown calibration data mode'): CalibConfig(data='noisy')
