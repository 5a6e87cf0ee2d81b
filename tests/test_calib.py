import copy, pytest, torch
from fair_calib_nb.calib import *
from fair_calib_nb.transforms import KronTransform, HadamardTransform, kron_factors, hadamard
from fair_calib_nb.quant import QuantLinear, quantize_model
from fair_calib_nb.tasks import make_splits
from fair_calib_nb.train import new_model

SP = make_splits(0)
P = [p for s in SP.values() for p in s['calib'].prompts[:16]]
A = [a for s in SP.values() for a in s['calib'].answers[:16]]

def _logits(d, n=16):
    b = calib_batch(d, P[:n], A[:n]); return d.logits(b['x'], b['attention_mask'])

def test_transform_inverse_and_factors():
    t = KronTransform(192, 'orthogonal', torch.Generator().manual_seed(0))
    with torch.no_grad(): t.P1 += 0.2 * torch.randn_like(t.P1)
    x, W = torch.randn(3, 192), torch.randn(5, 192)
    assert torch.allclose(t.inverse(t(x)), x, atol=1e-4) and torch.allclose(t(x) @ t.weight(W).T, x @ W.T, atol=1e-3)
    assert kron_factors(13) == (1, 13)                                   # prime: one dense factor, no crash
    assert KronTransform(13)(torch.randn(2, 13)).shape == (2, 13)
    H = hadamard(192); assert torch.allclose(H @ H.T, torch.eye(192), atol=1e-5)
    assert HadamardTransform(18).kind == "random-orthogonal"; assert HadamardTransform(704).kind == "hadamard"

def test_zero_epochs_identity_equals_rtn(llada):
    rtn = calibrate(llada, P, A, CalibConfig(method='rtn'), progress=False)
    flat0 = calibrate(llada, P, A, CalibConfig(method='flatquant', epochs=0, transform_init='identity', learn_clips=False), progress=False)
    assert torch.allclose(_logits(rtn), _logits(flat0), atol=1e-4)

def test_folding_is_exact(dllm):
    """Unfolded fake-quant block == folded block with online P (training form) == packed bitsandbytes block."""
    cfg = CalibConfig(method='flatquant', epochs=1, deploy=False, transform_init='orthogonal', smooth=True)
    st = quantize_model(dllm, 'W4A4'); b = calib_batch(dllm, P, A)
    h = dllm.embed(b['x']).detach(); am = b['attention_mask']
    wrapped = prepare_block(st, dllm, 0, h, am, cfg)
    with torch.no_grad():                                                # move away from the init so folding is not trivial
        for f in wrapped:
            if f.smooth is not None: f.smooth.log_s.add_(0.05 * torch.randn_like(f.smooth.log_s))
            f.transform.P1.add_(0.05 * torch.randn_like(f.transform.P1))
            f.ql.weight_clip_raw.fill_(1.5)
    with torch.no_grad(): before = st.blocks[0](h, am)
    finalize_block(st, 0, wrapped, cfg)
    with torch.no_grad(): folded = st.blocks[0](h, am)
    assert (folded - before).abs().max() / before.abs().max() < 1e-3
    for q in st.blocks[0].modules():
        if isinstance(q, QuantLinear): q.deploy()
    with torch.no_grad(): packed = st.blocks[0](h, am)
    assert (packed - folded).abs().max() / folded.abs().max() < 1e-3

def test_weighted_loss_all_ones_is_mse():
    a, b = torch.randn(4, 7, 16), torch.randn(4, 7, 16)
    assert torch.allclose(weighted_mse(a, b, torch.ones(4, 7)), torch.nn.functional.mse_loss(a, b))
    w = torch.rand(4, 7); assert torch.allclose(weighted_mse(a, b, 3 * w), weighted_mse(a, b, w))

def test_training_reduces_block_mse_on_two_block_model(llada):
    m = copy.deepcopy(llada.model); m.model.transformer.blocks = m.model.transformer.blocks[:2]   # the first 2 trained blocks
    from fair_calib_nb.models import DLLM
    d = DLLM(m, llada.tokenizer, 'tiny-llada-2blocks')
    start = calibrate(d, P, A, CalibConfig(method='flatquant', epochs=0), progress=False)     # the same init, untrained
    cfg = CalibConfig(method='flatquant', epochs=3, batch_size=8)
    flat = calibrate(d, P, A, cfg, progress=False)
    for r, f in zip(start.calib_log['blocks'], flat.calib_log['blocks']): assert f['mse'] < r['mse']
    assert all(b['epoch_loss'][-1] < b['epoch_loss'][0] for b in flat.calib_log['blocks'])

def test_determinism_under_seed(llada):
    cfg = CalibConfig(method='flatquant', epochs=1, seed=3)
    a, b = (calibrate(llada, P, A, cfg, progress=False) for _ in range(2))
    assert torch.equal(_logits(a), _logits(b))

def test_quarot_runs_and_teacher_untouched(llada):
    before = _logits(llada)
    q = calibrate(llada, P, A, CalibConfig(method='quarot'), progress=False)
    assert torch.equal(_logits(llada), before) and torch.isfinite(_logits(q)).all()

def test_bad_input(llada):
    with pytest.raises(ValueError, match='empty calibration set'): calibrate(llada, [], [], progress=False)
    with pytest.raises(ValueError, match='unknown method'): CalibConfig(method='gptq')
    with pytest.raises(ValueError, match='weights have shape'): calibrate(llada, P, A, weights=torch.ones(2, 3), progress=False)
    with pytest.raises(ValueError, match='cannot parse'): CalibConfig(quant='W3A3x')
    bad = copy.deepcopy(llada)
    with torch.no_grad(): bad.blocks[1].ff_out.weight.fill_(float('nan'))
    with pytest.raises((CalibrationError, ValueError)) as e: calibrate(bad, P, A, CalibConfig(method='flatquant', epochs=1), progress=False)
    assert 'block 1' in str(e.value) or 'NaN' in str(e.value)
