import pytest, torch
from fair_calib_nb.decode import Trace, DecodeConfig, generate
from fair_calib_nb.frontier import *
from fair_calib_nb.prior import *
from fair_calib_nb.tasks import make_splits

def toy(argmax, commit_step, tokens, block_length=None, prob=None):
    argmax = torch.tensor(argmax)[None]; _, T, G = argmax.shape
    z = torch.zeros(1, T, G)
    p = torch.tensor(prob, dtype=torch.float)[None] if prob is not None else z + .5
    return Trace(commit_step=torch.tensor([commit_step]), tokens=torch.tensor([tokens]), argmax=argmax, prob=p,
                 entropy=z + 1., margin=z + .1, prompt=torch.tensor([[5]]), attention_mask=torch.ones(1, G + 1, dtype=torch.long),
                 mask_id=1, config=_cfg(T, G, block_length or G), vocab_size=16)

def _cfg(T, G, bl):
    c = DecodeConfig(steps=G // bl, gen_length=G, block_length=bl); c.steps = T   # hand-built traces may have idle steps
    return c

def test_lag_hand_built():
    tr = toy([[7, 3, 3], [8, 4, 3], [7, 4, 3], [7, 4, 9]], [0, 1, 3], [7, 4, 9])
    assert stability_lag(tr).tolist() == [[2, 0, 0]]             # pos 0 wavers after commit; pos 2 committed at the last step
    assert stability_lag(tr, 'first').tolist() == [[0, 0, 0]]
    assert stabilization_step(tr).tolist() == [[2, 1, 3]]

def test_never_stable_and_late_agreement():
    tr = toy([[7, 5], [8, 5], [9, 5]], [0, 1], [7, 5])           # pos 0 disagrees from step 1 on: never stable
    assert stabilization_step(tr).tolist() == [[3, 1]] and stability_lag(tr).tolist() == [[3, 0]]
    tr = toy([[2], [7], [7]], [0], [7])                          # committed token (sampled) the argmax only agrees with later
    assert stability_lag(tr).tolist() == [[1]] and stability_lag(tr, 'first').tolist() == [[1]]
    tr = toy([[7], [2], [7]], [-1], [1])                         # never committed
    assert stability_lag(tr).tolist() == [[-1]]
    with pytest.raises(ValueError, match='no committed'): lag_ccdf(stability_lag(tr))
    with pytest.raises(ValueError, match='unknown stability variant'): stabilization_step(tr, 'last')

def test_ccdf_and_hits():
    tr = toy([[7, 3, 3], [8, 4, 3], [7, 4, 3], [7, 4, 9]], [0, 1, 3], [7, 4, 9])
    k, c = lag_ccdf(stability_lag(tr))
    assert k.tolist() == [0, 1, 2] and torch.allclose(c, torch.tensor([1/3, 1/3, 0.]))
    h = hit_map(tr)
    assert h.shape == (4, 3) and h.sum().item() == 3 and h[3, 2] == 1

def test_reliability_block_scope():
    # 2 blocks of 2 positions, 4 steps: block 0 active at steps 0-1, block 1 at steps 2-3
    tr = toy([[0] * 4] * 4, [0, 1, 2, 3], [0] * 4, block_length=2, prob=[[.9, .1, .5, .5]] * 4)
    r_blk, r_all = reliability(tr, scope='block'), reliability(tr, scope='all')
    assert torch.allclose(r_blk[0, 0], torch.tensor([.9, .1, 0, 0]))       # only the active block counts
    assert torch.allclose(r_all[0, 0], torch.tensor([.9, .1, .5, .5]) / 2.)
    assert torch.allclose(r_blk[0, 1], torch.tensor([0, 1., 0, 0]))          # pos 0 committed at step 0
    assert torch.allclose(r_blk.sum(-1), torch.ones(1, 4))
    for kind in RELIABILITY: assert torch.isfinite(reliability(tr, kind)).all()
    bad = toy([[0]], [0], [0]); bad.prob[:] = float('nan')
    with pytest.raises(ValueError, match='NaN'): reliability(bad)

def test_prior_from_hand_built_traces():
    # one run, 2 blocks of 2, one commit per step: early boost favours block 0
    tr = toy([[0] * 4] * 4, [0, 1, 2, 3], [0] * 4, block_length=2)
    p = Prior.from_traces(tr, PriorConfig(lambda1=0, boost=4.0))
    l0 = lambda0(4, 'early', 4.0)
    assert torch.allclose(p.window, l0 / l0.mean()) and abs(p.window.mean().item() - 1) < 1e-6
    late = Prior.from_traces(tr, PriorConfig(lambda1=0, boost=4.0, schedule='late'))
    assert torch.allclose(late.window, p.window.flip(0))
    const = Prior.from_traces(tr, PriorConfig(lambda1=0, schedule='constant'))
    assert torch.allclose(const.window, torch.ones(4))
    both = Prior.from_traces(tr, PriorConfig())
    assert torch.allclose(both.frontier_part + both.reliability_part, both.window)
    with pytest.raises(ValueError, match='every weight would be zero'): PriorConfig(frontier=False, lambda1=0)

def test_prior_expansion_and_json(tmp_path):
    tr = toy([[0] * 4] * 4, [0, 1, 2, 3], [0] * 4, block_length=2)
    p = Prior.from_traces(tr, PriorConfig(prompt_floor=0.1))
    am = torch.tensor([[0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    w = p.weights(3, am)
    assert w.shape == (2, 7) and w[0, 0] == 0 and torch.allclose(w[1, :3], torch.full((3,), .1))
    assert torch.allclose(w[:, 3:].mean(1), torch.ones(2))
    with pytest.raises(ValueError, match='window of 4 positions'): p.weights(3, gen_length=8)
    back = Prior.load(p.save(tmp_path / 'prior.json'))
    assert torch.equal(back.window, p.window) and back.config == p.config
    with pytest.raises(FileNotFoundError): Prior.load(tmp_path / 'nope.json')

def test_prior_bad_config():
    for kw, msg in [(dict(n_probe=0), 'n_probe'), (dict(rule='greedy'), 'probe rule'), (dict(schedule='mid'), 'schedule'),
                    (dict(reliability='x'), 'reliability'), (dict(prompt_floor=-1), 'prompt_floor'), (dict(lambda1=float('nan')), 'lambda1')]:
        with pytest.raises(ValueError, match=msg): PriorConfig(**kw)

CALIB = [p for s in make_splits(0).values() for p in s['calib'].prompts]
pytestmark = pytest.mark.filterwarnings('ignore')

def test_prior_on_real_models_seeded_and_converging(dllm):
    cfg = PriorConfig(n_probe=64, seed=1)
    a, tr = build_prior(dllm, CALIB, cfg, progress=False, return_trace=True)
    b = build_prior(dllm, CALIB, cfg, progress=False)
    assert torch.equal(a.window, b.window)                        # bit for bit under a seed
    assert abs(a.window.mean().item() - 1) < 1e-5 and a.spread > 1.05
    assert a.provenance['model'] == dllm.name and a.provenance['decoding']['remasking'] == 'random'
    # the early-boost prior favours the first block over the last
    assert a.window[:8].mean() > a.window[-8:].mean()
    # real traces: lags are well defined and most positions are stable right away
    lag = stability_lag(tr); assert ((lag >= 0) | (tr.commit_step < 0)).all() and (lag == 0).float().mean() > 0.5
    c = build_prior(dllm, CALIB, PriorConfig(n_probe=64, seed=2), progress=False)
    d = build_prior(dllm, CALIB, PriorConfig(n_probe=256, seed=3), progress=False)
    e = build_prior(dllm, CALIB, PriorConfig(n_probe=256, seed=4), progress=False)
    assert (d.window - e.window).abs().mean() < (a.window - c.window).abs().mean()   # more probes, closer priors

def test_build_prior_bad_input(llada):
    with pytest.raises(ValueError, match='empty calibration set'): build_prior(llada, [], progress=False)
    tr = generate(llada, CALIB[:4], record=True, progress=False).trace
    other = generate(llada, CALIB[:4], DecodeConfig(steps=24), record=True, progress=False).trace
    with pytest.raises(ValueError, match='different decoding settings'): Trace.cat([tr, other])
    with pytest.raises(ValueError, match='empty trace'): Prior.from_traces(tr[torch.zeros(4, dtype=torch.bool)])
