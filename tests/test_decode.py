"""Decoding tests. `ref_llada` and `ref_dream` restate the public reference samplers' documented behaviour
(ML-GSAI/LLaDA generate.py; Dream's diffusion_generate) for one unpadded prompt at a time, written independently of
`fair_calib_nb.decode`, so the batched, traced samplers can be checked token for token against them."""
import math, pytest, torch, torch.nn.functional as F
from fair_calib_nb.decode import *
from fair_calib_nb.tasks import make_splits

def ref_llada(model, prompt, steps, gen_length, block_length, mask_id, wide=False):
    "LLaDA's generate (current upstream: confidence softmax in the logits' dtype; `wide`: the float64 variant) -> ids, commit steps."
    x = torch.full((1, prompt.shape[1] + gen_length), mask_id, dtype=torch.long); x[:, :prompt.shape[1]] = prompt
    commit = torch.full((gen_length,), -1); P = prompt.shape[1]
    nblocks = gen_length // block_length; spb = steps // nblocks; step = 0
    for nb in range(nblocks):
        start = P + nb * block_length; end = start + block_length
        n = int((x[0, start:end] == mask_id).sum())
        sched = [n // spb + (1 if i < n % spb else 0) for i in range(spb)]   # even split, remainder first
        for i in range(spb):
            masked = x == mask_id
            logits = model(x).logits
            x0 = logits.argmax(-1)
            conf = F.softmax(logits.double() if wide else logits, -1).gather(-1, x0[..., None])[..., 0]
            conf[:, end:] = -math.inf                                           # never beyond the active block
            conf = torch.where(masked, conf, torch.tensor(-math.inf, dtype=conf.dtype))
            idx = torch.topk(conf[0], sched[i]).indices
            x[0, idx] = x0[0, idx]; commit[idx - P] = step; step += 1
    return x, commit

def ref_dream(model, prompt, steps, gen_length, mask_id, alg='entropy', eps=1e-3):
    x = F.pad(prompt, (0, gen_length), value=mask_id)
    ts = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        masked = x == mask_id
        logits = model(x).logits; logits = torch.cat([logits[:, :1], logits[:, :-1]], 1)   # Dream's shift
        probs = logits[masked].softmax(-1)
        conf, x0 = probs.max(-1)
        if alg == 'topk_margin': s = probs.sort(-1, descending=True).values; conf = s[:, 0] - s[:, 1]
        if alg == 'entropy': conf = (probs * torch.log(probs + 1e-10)).sum(-1)
        n = int(masked.sum() * (1 - ts[i+1] / ts[i])) if i < steps - 1 else int(masked.sum())
        full = torch.full(x.shape, -math.inf); full[masked] = conf
        if n:
            idx = torch.topk(full, n).indices
            cand = torch.full_like(x, mask_id); cand[masked] = x0
            x[0, idx[0]] = cand[0, idx[0]]
    return x

PROMPTS = make_splits(0)['walk']['test'].prompts[:6] + make_splits(0)['sort']['test'].prompts[:6]

@pytest.mark.parametrize('steps,block,dtype', [(12, 8, 'native'), (24, 24, 'native'), (6, 12, 'native'), (24, 4, 'native'), (12, 8, 'float64')])
def test_llada_matches_reference(llada, steps, block, dtype):
    """Tokens and commit steps equal a per-prompt re-statement of upstream LLaDA's generate (and of its float64 variant).
    Native float32 confidences saturate at 1.0 and left padding moves their last bit, so near-ties may commit in another
    order in a padded batch (as upstream's own batches do): the native check decodes prompt by prompt; float64 is checked
    on the padded batch."""
    cfg = DecodeConfig(sampler='llada', steps=steps, block_length=block, confidence_dtype=dtype)
    batch = generate(llada, PROMPTS, cfg, record=True, progress=False)
    for r, p in enumerate(PROMPTS):
        ids = torch.tensor([llada.tokenizer(p, add_special_tokens=False)['input_ids']])
        ref, commit = ref_llada(llada.model, ids, steps, cfg.gen_length, block, llada.mask_id, wide=dtype == 'float64')
        out, i = (batch, r) if dtype == 'float64' else (generate(llada, [p], cfg, record=True, progress=False), 0)
        assert torch.equal(out.x[i, out.prompt_length - ids.shape[1]:], ref[0]), (p, steps, block)
        assert torch.equal(out.trace.commit_step[i], commit), (p, steps, block)

@pytest.mark.parametrize('alg,steps', [('entropy', 12), ('maskgit_plus', 24), ('topk_margin', 8)])
def test_dream_matches_reference(dream, alg, steps):
    cfg = DecodeConfig(sampler='dream', alg=alg, steps=steps, block_length=24)
    out = generate(dream, PROMPTS, cfg, progress=False)
    for r, p in enumerate(PROMPTS):
        ids = torch.tensor([dream.tokenizer(p, add_special_tokens=False)['input_ids']])
        ref = ref_dream(dream.model, ids, steps, cfg.gen_length, dream.mask_id, alg)
        assert torch.equal(out.x[r, out.prompt_length - ids.shape[1]:], ref[0]), (p, alg)

@pytest.mark.parametrize('kw', [dict(), dict(remasking='random'), dict(temperature=0.7), dict(sampler='dream'),
                                dict(sampler='dream', alg='origin'), dict(sampler='dream', temperature=0.5, top_p=0.9)])
def test_trace_invariants(dllm, kw):
    cfg = DecodeConfig(**kw)
    on = generate(dllm, PROMPTS, cfg, seed=3, record=True, topk=3, progress=False)
    off = generate(dllm, PROMPTS, cfg, seed=3, record=False, progress=False)
    assert torch.equal(on.x, off.x)                                   # recording changes nothing
    tr = on.trace; B, T, G = len(PROMPTS), cfg.steps, cfg.gen_length
    assert tr.argmax.shape == tr.prob.shape == (B, T, G) and tr.topk_ids.shape == (B, T, G, 3)
    written = tr.commit_step >= 0
    assert written.float().mean() > 0.99                              # a run can only miss a position by sampling [MASK]
    assert (tr.frontier().sum(1) == written.long()).all()             # committed at most once
    assert torch.equal(tr.final(), on.x) and torch.equal(tr.tokens, on.x[:, on.prompt_length:])
    if cfg.sampler == 'llada':                                        # LLaDA's even per-block schedule
        per_step = tr.frontier().sum(2)
        assert (per_step == G // T).all()
        blocks = tr.commit_step // (cfg.steps // cfg.num_blocks)
        assert (blocks == torch.arange(G)[None] // cfg.block_length).all()
    # replay: S_t re-created from the trace gives the model's recorded prediction at step t
    states = tr.states()
    for t in range(T):
        assert torch.equal(states[:, t], tr.state(t))
        if cfg.temperature == 0 and kw.get('remasking') != 'random':
            pred = dllm.logits(tr.state(t), tr.attention_mask)[:, tr.prompt_length:].argmax(-1)
            assert (pred == tr.argmax[:, t]).float().mean() > 0.999

def test_deterministic_at_temperature_zero(dllm):
    a = generate(dllm, PROMPTS, seed=0, progress=False); b = generate(dllm, PROMPTS, seed=123, progress=False)
    assert torch.equal(a.x, b.x)

def test_seeded_sampling_reproducible(llada):
    cfg = DecodeConfig(temperature=1.0)
    a, b = (generate(llada, PROMPTS, cfg, seed=7, progress=False) for _ in range(2))
    assert torch.equal(a.x, b.x)

def test_batching_does_not_change_results(llada):
    a = generate(llada, PROMPTS, batch_size=256, progress=False); b = generate(llada, PROMPTS, batch_size=5, progress=False)
    assert a.answers == b.answers

def test_trace_save_load_and_cat(llada, tmp_path):
    tr = generate(llada, PROMPTS, record=True, progress=False).trace
    tr.save(tmp_path/'t.safetensors'); back = Trace.load(tmp_path/'t.safetensors')
    assert back.config == tr.config and all(torch.equal(getattr(back, f), getattr(tr, f)) for f in ('commit_step', 'prob', 'prompt'))
    both = Trace.cat([tr[:3], tr[3:]])
    assert torch.equal(both.commit_step, tr.commit_step)
    other = generate(llada, PROMPTS[:2], DecodeConfig(steps=24), record=True, progress=False).trace
    with pytest.raises(ValueError, match='different decoding settings'): Trace.cat([tr, other])
    with pytest.raises(FileNotFoundError): Trace.load(tmp_path/'missing.safetensors')

def test_bad_decoding_inputs(llada):
    with pytest.raises(ValueError, match='does not divide into'): DecodeConfig(steps=7)
    with pytest.raises(ValueError, match='does not divide gen_length'): DecodeConfig(block_length=5)
    with pytest.raises(ValueError, match='> gen_length'): DecodeConfig(steps=48, block_length=24)
    with pytest.raises(ValueError, match='unknown remasking'): DecodeConfig(remasking='lowest')
    with pytest.raises(ValueError, match='unknown Dream algorithm'): DecodeConfig(alg='greedy')
    with pytest.raises(ValueError, match='temperature'): DecodeConfig(temperature=-0.1)
    with pytest.raises(ValueError, match='mask token'): generate(llada, ['<walk>+[MASK]='], progress=False)
    with pytest.raises(ValueError, match='confidence_dtype'): DecodeConfig(confidence_dtype='half')
    with pytest.raises(ValueError, match='maximum length'): generate(llada, ['<sort>' + '1' * 60 + '='], progress=False)
