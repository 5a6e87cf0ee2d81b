"Parametric cross-checks of quant against bitsandbytes on both shipped models: bit-exact fake-quant, deployed == training form, students on disk."
import json, pytest, torch, torch.nn as nn
import bitsandbytes as bnb
import bitsandbytes.functional as BF
from fair_calib_nb.quant import (ActQuantizer, QuantLinear, QuantConfig, parse_config, quantize_model, deploy_model, quant_layers,
                                 block_linears, is_quantized, model_bytes, fake_quant_4bit,
                                 fake_quant_int4, fake_quant_weight, bnb_roundtrip, bnb_codebook, clip_weight, round_ste)
from fair_calib_nb.tasks import make_splits, encode_batch

def bits_equal(a, b):
    "Same dtype and identical bit patterns (so -0.0 != 0.0)."
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.float().view(torch.int32), b.float().view(torch.int32))

def real_weights(*dllms):
    return [m.weight.detach() for d in dllms for m in d.blocks.modules() if isinstance(m, nn.Linear)]

@pytest.fixture(scope='module')
def batch(llada):
    "Real sequences (prompt + answer, half the window masked) with their attention mask."
    cal = make_splits(0)['walk']['calib']
    b = encode_batch(llada.tokenizer, cal.prompts[:16], cal.answers[:16]); P = b['prompt_length']
    x = b['x'].clone()
    x[:, P:][torch.rand(x[:, P:].shape, generator=torch.Generator().manual_seed(0)) < 0.5] = llada.mask_id
    return x, b['attention_mask']

# ---------------------------------------------------------------- weights: bit-exact bitsandbytes

@pytest.mark.parametrize('qt', ['nf4', 'fp4'])
@pytest.mark.parametrize('bs', [32, 64, 128, 256])
def test_fake_quant_bit_exact_random(qt, bs):
    g = torch.Generator().manual_seed(bs)
    for w in [torch.randn(96, 512, generator=g), torch.randn(64, 256, generator=g) * 0.02, torch.rand(8, 1024, generator=g) - 0.5,
              torch.randn(16, 256, generator=g).half(), torch.randn(16, 256, generator=g).bfloat16()]:
        assert bits_equal(fake_quant_4bit(w, qt, bs), bnb_roundtrip(w, qt, bs)), (qt, bs, w.shape, w.dtype)

@pytest.mark.parametrize('qt', ['nf4', 'fp4'])
@pytest.mark.parametrize('bs', [32, 64, 128])
def test_fake_quant_bit_exact_real(llada, dream, qt, bs):
    n = 0
    for w in real_weights(llada, dream):
        if w.shape[-1] % bs: continue
        assert bits_equal(fake_quant_4bit(w, qt, bs), bnb_roundtrip(w, qt, bs)); n += 1
    nb = len(llada.blocks) + len(dream.blocks)   # 7 linears per block, 1 of them (down) has input dim 512
    assert n >= (7 * nb if bs < 128 else nb)

@pytest.mark.parametrize('qt', ['nf4', 'fp4'])
def test_fake_quant_ties_zeros_and_signs(qt):
    "Values exactly on the midpoints between code values (ties), zero blocks, negative zeros: same bits as bitsandbytes."
    code = bnb_codebook(qt); s = code.sort().values
    mids = (s[:-1] + s[1:]) / 2
    block = torch.cat([torch.tensor([1.0]), mids, -mids, torch.zeros(2), torch.tensor([-0.0, 1e-30])])
    block = torch.cat([block, torch.zeros(64 - block.numel())])
    w = torch.stack([block, torch.zeros(64), -block, block * 3.5])
    assert bits_equal(fake_quant_4bit(w, qt, 64), bnb_roundtrip(w, qt, 64))
    assert fake_quant_4bit(torch.zeros(2, 64), qt, 64).abs().sum() == 0

def test_codebook_is_bitsandbytes():
    assert torch.equal(bnb_codebook('nf4'), BF.get_4bit_type('nf4', device='cpu'))
    assert torch.equal(bnb_codebook('fp4'), BF.get_4bit_type('fp4', device='cpu'))
    with pytest.raises(ValueError, match='unknown bitsandbytes 4-bit type'): bnb_codebook('af4')

def test_fake_quant_is_differentiable(llada):
    w = real_weights(llada)[0].clone().requires_grad_()
    fake_quant_4bit(w).pow(2).sum().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    w2 = torch.randn(8, 64, requires_grad=True)
    fake_quant_int4(w2).sum().backward(); assert torch.isfinite(w2.grad).all()

def test_weight_blocksize_errors():
    with pytest.raises(ValueError, match='does not divide the input dim 96'): fake_quant_4bit(torch.randn(4, 96), 'nf4', 64)
    with pytest.raises(ValueError, match='not one bitsandbytes supports'): fake_quant_4bit(torch.randn(4, 96), 'nf4', 48)
    with pytest.raises(ValueError, match='unknown weight format'): fake_quant_weight(torch.randn(4, 64), 'int3')

def test_int4_per_channel(llada):
    w = real_weights(llada)[0]
    q = fake_quant_int4(w); scale = w.abs().amax(-1, keepdim=True) / 7
    lv = q / scale
    assert (lv - lv.round()).abs().max() < 1e-4 and lv.min() >= -8 - 1e-4 and lv.max() <= 7 + 1e-4
    assert all(len(r.unique()) <= 16 for r in q)
    # NF4 blockwise is the stronger weight quantizer on real weights
    ws = real_weights(llada)
    err = lambda f: sum((fake_quant_weight(x, f) - x).pow(2).sum() for x in ws)
    assert err('nf4') < err('int4')

def test_clip_weight():
    w = torch.randn(6, 64)
    c = clip_weight(w, torch.full((6,), 0.5))
    assert torch.allclose(c.abs().amax(-1), 0.5 * w.abs().amax(-1))
    assert clip_weight(w, None) is w

# ---------------------------------------------------------------- activation quantizer

def test_act_per_token_scale():
    aq = ActQuantizer(); x = torch.randn(3, 7, 64)
    y = aq(x); x2 = x.clone(); x2[1, 3] *= 1000
    assert torch.equal(aq(x2)[1, :3], y[1, :3]) and torch.equal(aq(x2)[0], y[0])
    scale, zero = aq.qparams(x)
    assert scale.shape == (3, 7, 1) and torch.equal(zero, torch.zeros_like(zero))
    assert torch.allclose(scale, x.abs().amax(-1, keepdim=True) / 7)
    assert max(len(t.unique()) for t in y.reshape(-1, 64)) <= 16
    lv = y / scale
    assert (lv - lv.round()).abs().max() < 1e-4

def test_act_int8_finer_than_int4():
    x = torch.randn(4, 16, 128)
    e4, e8 = [(ActQuantizer(b)(x) - x).pow(2).mean() for b in (4, 8)]
    assert e8 < e4 / 50

def test_act_asymmetric():
    aq = ActQuantizer(symmetric=False)
    pos = torch.rand(4, 8, 64) + 0.1
    assert (aq(pos) - pos).pow(2).mean() < (ActQuantizer()(pos) - pos).pow(2).mean() / 2
    scale, zero = aq.qparams(pos)
    assert torch.equal(zero, torch.zeros_like(zero))                 # range starts at 0 (zero is representable)
    x = torch.randn(2, 5, 64); y = aq(x); scale, zero = aq.qparams(x)
    lv = y / scale + zero
    assert lv.min() >= -1e-4 and lv.max() <= 15 + 1e-4 and (lv - lv.round()).abs().max() < 1e-3
    assert (y - x).abs().max() <= scale.max() / 2 + 1e-6

def test_act_per_tensor_per_sequence():
    at = ActQuantizer(granularity='tensor'); x = torch.randn(4, 9, 64)
    y = at(x)
    for i in range(4): assert torch.equal(y[i], at(x[i:i+1])[0])   # independent of batch composition
    assert at.qparams(x)[0].shape == (4, 1, 1)
    x2 = x.clone(); x2[0, 0] *= 100
    assert not torch.equal(at(x2)[0, 1:], y[0, 1:]) and torch.equal(at(x2)[1:], y[1:])

def test_act_ste_identity_inside_clip():
    aq = ActQuantizer(clip_ratio=0.6)
    x = torch.randn(8, 64, requires_grad=True)
    aq(x).sum().backward()
    scale, _ = aq.qparams(x); v = x.detach() / scale
    inside = (v >= aq.qmin) & (v <= aq.qmax)
    assert 0 < inside.float().mean() < 1
    assert torch.equal(x.grad, inside.float())
    x = torch.randn(5, requires_grad=True); round_ste(x * 3).sum().backward()
    assert torch.equal(x.grad, torch.full((5,), 3.0))

def test_act_learnable_clip():
    aq = ActQuantizer(learnable=True)
    assert abs(aq.clip.item() - 0.982) < 1e-3 and aq.learnable
    x = torch.randn(4, 64)
    (aq(x) - x).pow(2).sum().backward()
    assert aq.clip_raw.grad is not None and aq.clip_raw.grad != 0
    fixed = ActQuantizer(clip_ratio=0.9)
    assert not fixed.learnable and abs(fixed.clip.item() - 0.9) < 1e-7 and len(list(fixed.parameters())) == 0

def test_act_errors():
    with pytest.raises(ValueError, match='activation quantizer got NaN/inf activations'): ActQuantizer()(torch.tensor([[1.0, float('nan')]]))
    with pytest.raises(ValueError, match='activation quantizer got NaN/inf activations'): ActQuantizer()(torch.tensor([[float('inf'), 1.0]]))
    with pytest.raises(ValueError, match='activation bits'): ActQuantizer(bits=16)
    with pytest.raises(ValueError, match='granularity'): ActQuantizer(granularity='channel')
    with pytest.raises(ValueError, match='clip_ratio'): ActQuantizer(clip_ratio=1.5)

# ---------------------------------------------------------------- QuantLinear: training form == deployed form

@pytest.mark.parametrize('qt', ['nf4', 'fp4'])
def test_quantlinear_deploy_matches(dream, qt):
    lin = dream.blocks[1].self_attn.v_proj                          # has a bias
    x = torch.randn(3, 11, lin.in_features)
    ql = QuantLinear.from_linear(lin, qt, act=ActQuantizer()).add_weight_clip(2.0)
    with torch.no_grad(): y = ql(x)
    ref_w = bnb_roundtrip(clip_weight(lin.weight.detach(), ql.weight_clip.detach()), qt)
    ql.deploy()
    assert isinstance(ql.linear4bit, bnb.nn.Linear4bit) and ql.weight is None and ql.weight_clip_raw is None
    assert bits_equal(ql.quantized_weight(), ref_w)
    with torch.no_grad(): assert torch.allclose(ql(x), y, atol=1e-5, rtol=0)

def test_quantlinear_errors(llada):
    lin = llada.blocks[0].q_proj
    with pytest.raises(ValueError, match='int4 layers stay in fake-quant'): QuantLinear.from_linear(lin, 'int4').deploy()
    with pytest.raises(ValueError, match='does not divide the input dim 192 of blk.q'):
        QuantLinear.from_linear(torch.nn.Linear(192, 64), blocksize=128, name='blk.q')
    ql = QuantLinear.from_linear(lin).deploy()
    with pytest.raises(ValueError, match='is deployed'): ql.add_weight_clip()

def test_bf16_kernel_keeps_exact_format(llada):
    "bitsandbytes' bf16 CPU kernel repacks in place; state dicts and dequantized weights must stay exact."
    lin = llada.blocks[0].ff_out
    x = torch.randn(2, 9, lin.in_features)
    exact = QuantLinear.from_linear(lin, act=ActQuantizer()).deploy().eval()
    fused = QuantLinear.from_linear(lin, act=ActQuantizer()).deploy(bf16_cpu_kernel=True).eval()
    with torch.no_grad(): ye, yf = exact(x), fused(x)
    assert torch.allclose(ye, yf, atol=0.05 * ye.abs().max().item())
    if BF.has_avx512bf16(): assert not torch.equal(ye, yf) and fused.linear4bit.weight.quant_state.packing_format_for_cpu
    sd_e, sd_f = exact.state_dict(), fused.state_dict()
    assert sd_e.keys() == sd_f.keys() and all(torch.equal(sd_e[k], sd_f[k]) for k in sd_e)
    assert torch.equal(exact.quantized_weight(), fused.quantized_weight())
    with torch.no_grad(): assert torch.equal(fused(x), yf)

# ---------------------------------------------------------------- configs

def test_parse_config():
    assert parse_config('W4A4') == QuantConfig()
    assert parse_config('w4a8').a_bits == 8 and parse_config('W4A16').act_quantizer() is None
    assert parse_config('W4A4-int4').w_format == 'int4' and parse_config('W4A4-int4').name == 'W4A4-int4'
    assert parse_config('W4A4', blocksize=128).blocksize == 128
    c = parse_config('W4A8-fp4', a_granularity='tensor', keep=['*.ff_out'])
    assert QuantConfig.from_dict(c.to_dict()) == c and c.keep == ('*.ff_out',)
    assert parse_config(c, a_bits=4).a_bits == 4
    for bad, msg in [('W4A3', 'A4, A8 or A16'), ('W8A8', '4-bit only'), ('fp16', 'cannot parse'), ('', 'cannot parse'), ('W4A4-nf3', 'cannot parse')]:
        with pytest.raises(ValueError, match=msg): parse_config(bad)
    with pytest.raises(ValueError, match='blocksize 48'): parse_config('W4A4', blocksize=48)
    with pytest.raises(ValueError, match='also given'): parse_config('W4A4-int4', w_format='nf4')
    with pytest.raises(ValueError, match='keep must be a tuple'): parse_config('W4A4', keep='*.ff_out')
    with pytest.raises(ValueError, match='unknown QuantConfig fields'): QuantConfig.from_dict({'bits': 4})

# ---------------------------------------------------------------- models

def test_quantize_model_leaves_teacher(dllm, batch):
    x, am = batch
    before = {k: v.clone() for k, v in dllm.model.state_dict().items()}
    with torch.no_grad(): l0 = dllm.logits(x, am)
    q = quantize_model(dllm, 'W4A4')
    assert q is not dllm and q.model is not dllm.model and not is_quantized(dllm)
    assert all(torch.equal(v, dllm.model.state_dict()[k]) for k, v in before.items())
    with torch.no_grad():
        assert torch.equal(dllm.logits(x, am), l0)
        lq = q.logits(x, am)
    assert not torch.equal(lq, l0) and torch.isfinite(lq).all()
    layers = quant_layers(q)
    assert len(layers) == 7 * len(dllm.blocks) == len(block_linears(dllm)) and not block_linears(q)
    assert {n.split('.')[-1] for n in layers} == {n.split('.')[-1] for n in block_linears(dllm)}
    assert type(q.lm_head) is nn.Linear and isinstance(q.embedding, nn.Embedding)   # full precision outside the blocks
    assert q.quant_config == parse_config('W4A4') and q.name.endswith('W4A4')

def test_quantize_model_keep_and_a16(llada):
    q = quantize_model(llada, 'W4A16', keep=('*.ff_out', '*.blocks.0.*'))
    assert len(quant_layers(q)) == 6 * (len(llada.blocks) - 1) and all(l.act is None for l in quant_layers(q).values())
    assert type(q.blocks[0].q_proj) is nn.Linear and type(q.blocks[3].ff_out) is nn.Linear
    with pytest.raises(ValueError, match='nothing to quantize'): quantize_model(llada, 'W4A4', keep=('*',))

def test_quantize_model_errors(llada):
    with pytest.raises(ValueError, match='cannot parse quantization config'): quantize_model(llada, 'W4-A4')
    with pytest.raises(ValueError, match='does not divide the input dim 256 of model.transformer.blocks.0.q_proj'):
        quantize_model(llada, 'W4A4', blocksize=512)
    q = quantize_model(llada, 'W4A8')
    with pytest.raises(ValueError, match='already quantized'): quantize_model(q, 'W4A4')
    with pytest.raises(ValueError, match='already quantized'): quantize_model(deploy_model(q), 'W4A4')
    with pytest.raises(ValueError, match='not quantized'): deploy_model(llada)
    with pytest.raises(ValueError, match='no bitsandbytes format'): deploy_model(quantize_model(llada, 'W4A4-int4'))

@pytest.mark.parametrize('spec', ['W4A4', 'W4A8-fp4', 'W4A16'])
def test_deployed_logits_match_training_form(dllm, batch, spec):
    x, am = batch
    q = quantize_model(dllm, spec); d = deploy_model(q)
    assert all(l.deployed for l in quant_layers(d).values()) and not any(l.deployed for l in quant_layers(q).values())
    with torch.no_grad(): lq, ld = q.logits(x, am), d.logits(x, am)
    assert (lq - ld).abs().max() < 1e-4

def test_model_bytes(dream):
    fp, dep = model_bytes(dream.model), model_bytes(deploy_model(quantize_model(dream, 'W4A4')).model)
    lin = sum(m.weight.numel() for m in block_linears(dream).values())
    assert fp['quant_state'] == 0 and dep['quant_state'] >= lin // 64 * 4
    assert fp['total'] - dep['total'] >= lin * 4 - lin // 2 - lin // 64 * 4 - 10_000

# ---------------------------------------------------------------- students on disk (transformers format)

@pytest.mark.parametrize('spec', ['W4A4', 'W4A8-fp4', 'W4A4-int4'])
def test_save_load_roundtrip(dllm, batch, tmp_path, spec):
    from fair_calib_nb.student import save_student, load_student
    from transformers import AutoModel
    x, am = batch
    q = quantize_model(dllm, spec)
    first = next(iter(quant_layers(q).values())); first.act.make_learnable(1.5)
    if spec.endswith('int4'): first.add_weight_clip(3.0)
    p = save_student(q, tmp_path/'q')
    assert {f.name for f in p.iterdir()} >= {'model.safetensors', 'config.json', 'tokenizer.json'} and not (p/'quant.json').exists()
    back = load_student(p)
    ref = q if spec.endswith('int4') else deploy_model(q)
    with torch.no_grad():
        assert torch.equal(back.logits(x, am), ref.logits(x, am))
        kw = dllm.family.model_inputs(am)
        assert torch.equal(AutoModel.from_pretrained(p)(x, **kw).logits, ref.model(x, **kw).logits)
    assert back.quant_config == q.quant_config and back.name == q.name and back.family == dllm.family
    bl = quant_layers(back)
    assert bl.keys() == quant_layers(q).keys() and all(l.deployed != spec.endswith('int4') for l in bl.values())
    assert next(iter(bl.values())).act.learnable
    with pytest.raises(ValueError, match='already quantized'): quantize_model(back, 'W4A4')

def test_save_load_errors(llada, tmp_path):
    from fair_calib_nb.student import save_student, load_student
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel
    with pytest.raises(ValueError, match='not quantized'): save_student(llada, tmp_path/'fp')
    with pytest.raises(ValueError, match='not a fair_calib student'): load_student(tmp_path)
    p = save_student(quantize_model(llada, 'W4A4'), tmp_path/'q')
    sd = load_file(p/'model.safetensors'); sd['extra.weight'] = torch.zeros(1); save_file(sd, p/'model.safetensors', metadata={'format': 'pt'})
    with pytest.raises(ValueError, match='1 unexpected tensors'): AutoModel.from_pretrained(p)
    import json
    cfg = json.loads((p/'config.json').read_text()); cfg['quantization_config']['format_version'] = 2; (p/'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match='format_version 1'): AutoModel.from_pretrained(p)

def test_weight_only_student_as_standard_bitsandbytes(dllm, batch, tmp_path):
    "A W4A16 NF4 student exports as a BitsAndBytesConfig checkpoint that transformers loads by itself (bf16 CPU kernel aside)."
    from fair_calib_nb.student import export_bnb
    from transformers import AutoModel
    x, am = batch
    q = deploy_model(quantize_model(dllm, 'W4A16'))
    m = AutoModel.from_pretrained(export_bnb(q, tmp_path/'bnb'))
    assert json.loads((tmp_path/'bnb'/'config.json').read_text())['quantization_config']['quant_method'] == 'bitsandbytes'
    for mod in m.modules():
        if isinstance(mod, bnb.nn.Linear4bit): mod.support_avx512bf16_for_cpu = False   # the same fp32 kernel as ours
    with torch.no_grad(): assert torch.equal(m(x, **dllm.family.model_inputs(am)).logits, q.model(x, **dllm.family.model_inputs(am)).logits)
    with pytest.raises(ValueError, match='only weight-only'): export_bnb(quantize_model(dllm, 'W4A4'), tmp_path/'no')

# ---------------------------------------------------------------- evaluation cache: dequantize once, identical outputs

from fair_calib_nb.quant import cached_weights

@pytest.mark.parametrize('spec', ['W4A4', 'W4A16', 'W4A4-fp4', 'W4A16-fp4', 'W4A8', 'W4A4-int4'])
@pytest.mark.parametrize('deployed', [False, True])
def test_cached_weights_bit_identical(dllm, batch, spec, deployed):
    if deployed and spec.endswith('int4'): pytest.skip('int4 does not deploy')
    x, am = batch
    s = quantize_model(dllm, spec); s = deploy_model(s) if deployed else s
    with torch.no_grad(): ref = s.logits(x, am)
    with cached_weights(s.model) as c, torch.no_grad(): got, nbytes = s.logits(x, am), c.nbytes
    assert torch.equal(got, ref)
    assert nbytes == sum(l.in_features * l.out_features * 4 for l in quant_layers(s).values())
    assert all(getattr(l, '_wcache', None) is None for l in quant_layers(s).values())   # released on exit

@pytest.mark.parametrize('method', ['quarot', 'rtn'])
def test_cached_weights_calibrated_and_reloaded_students(dllm, batch, pairs, method, tmp_path):
    "Students as the pipeline evaluates them: transforms and activation quantizers shared by a group, and reloaded from disk."
    from fair_calib_nb.calib import calibrate, CalibConfig
    from fair_calib_nb.student import save_student, load_student
    x, am = batch
    s = calibrate(dllm, *pairs, CalibConfig(method=method), progress=False)
    for m in (s, load_student(save_student(s, tmp_path/method))):
        with torch.no_grad(): ref = m.logits(x, am)
        with cached_weights(m.model) as c, torch.no_grad(): got, memos = m.logits(x, am), list(c.memos)
        assert torch.equal(got, ref)
        assert memos and not any('forward' in vars(mm) or getattr(mm, '_memo', None) is not None for mm in memos)

@pytest.mark.parametrize('kw', [dict(), dict(symmetric=False), dict(granularity='tensor'), dict(bits=8, clip_ratio=0.7),
                                dict(symmetric=False, granularity='tensor', clip_ratio=0.9)])
def test_act_quantize_inplace_bit_identical(kw):
    aq = ActQuantizer(**kw); x = torch.randn(3, 9, 64) * torch.rand(3, 9, 1) * 5
    with torch.no_grad(): assert bits_equal(aq.quantize_(x), aq(x))
    assert bits_equal(aq.quantize_(x.to(torch.bfloat16)), aq(x.to(torch.bfloat16)))
    z = torch.zeros(2, 3, 64); z[0, 1] = -0.0                                   # all-zero rows: scale falls back to 1 either way
    assert bits_equal(aq.quantize_(z), aq(z))
    for bad in (float('nan'), float('inf'), -float('inf')):                      # the no-gradient form refuses NaN/inf too
        xb = x.clone(); xb[1, 2, 3] = bad
        with pytest.raises(ValueError, match='NaN/inf'): aq.quantize_(xb)

@pytest.mark.parametrize('deployed', [False, True])
def test_cached_weights_computed_once(llada, batch, deployed):
    "Inside the context no forward recomputes a weight (the key once held the id of a temporary `.data` view: every forward missed)."
    s = quantize_model(llada, 'W4A4'); s = deploy_model(s) if deployed else s
    x, am = batch; calls = []; orig = QuantLinear._eval_weight
    try:
        QuantLinear._eval_weight = lambda self: calls.append(self) or orig(self)
        with cached_weights(s.model) as c, torch.no_grad():
            entered, cached = len(calls), len(c.layers); a = s.logits(x, am); b = s.logits(x, am)
        assert entered == cached == len(quant_layers(s)) and len(calls) == entered   # computed on entry, never again
        assert torch.equal(a, b)
    finally: QuantLinear._eval_weight = orig

def test_cached_weights_grad_nested_stale_and_bf16(llada):
    s = deploy_model(quantize_model(llada, 'W4A4')); ql = next(iter(quant_layers(s).values()))
    xq = torch.randn(2, 5, ql.in_features, requires_grad=True)
    with cached_weights(s.model) as outer:
        with cached_weights(s.model) as inner: assert inner.layers == [] and ql._wcache is not None
        assert ql._wcache is not None
        ql(xq).sum().backward(); assert xq.grad is not None                 # gradients: the usual path
    assert ql._wcache is None and outer.nbytes == 0
    t = quantize_model(llada, 'W4A4'); tl = next(iter(quant_layers(t).values())); xs = torch.randn(2, 5, tl.in_features)
    with cached_weights(t.model), torch.no_grad():
        before = tl(xs); tl.weight.mul_(0.5)                                  # changed in place: requantized
        assert torch.equal(tl(xs), torch.nn.functional.linear(tl.act(xs), fake_quant_weight(tl.weight)))
        assert not torch.equal(before, tl(xs))
    b = deploy_model(quantize_model(llada, 'W4A4', bf16_cpu_kernel=True))
    with cached_weights(b.model) as c: assert c.layers == []                  # the fused bf16 kernel: nothing cached


def test_truncated_student_weights_are_named(llada, tmp_path):
    "A student whose model.safetensors was cut short: load_student names the file instead of a raw safetensors traceback."
    from fair_calib_nb.quant import quantize_model
    from fair_calib_nb.student import save_student, load_student
    p = save_student(quantize_model(llada, 'W4A16'), tmp_path/'s')
    f = p/'model.safetensors'; b = f.read_bytes(); f.write_bytes(b[:len(b) // 2])
    with pytest.raises(ValueError, match=r'model\.safetensors: cannot read its weights'): load_student(p)
