"""The shipped models take the real families' paths: LLaDA's block call and tokenizer without a mask token, Dream's rotary,
4D boolean masks and shifted logits; remote-code directories (in the transformers-4 style) through the compatibility layer;
students of remote-code models saved and reloaded in a fresh process; bad checkpoints refused with clear errors."""
import json, os, shutil, subprocess, sys, warnings, pytest, torch
from transformers import AutoModel, AutoTokenizer
from fair_calib_nb.models import load_dllm, DATA
from fair_calib_nb.modeling import TinyLLaDAModelLM, TinyDreamModel
from fair_calib_nb.compat import legacy_checkpoint
from fair_calib_nb.tasks import make_splits, encode_batch

def _batch(d, n=16):
    sp = make_splits(0)['sort']['test']
    return encode_batch(d.tokenizer, sp.prompts[:n], sp.answers[:n])

def test_shipped_models_use_the_published_conventions(llada, dream):
    assert isinstance(AutoModel.from_pretrained(DATA/'tiny-llada'), TinyLLaDAModelLM)
    assert isinstance(AutoModel.from_pretrained(DATA/'tiny-dream'), TinyDreamModel)
    raw = AutoTokenizer.from_pretrained(DATA/'tiny-llada')
    assert raw.mask_token is None and json.loads((DATA/'tiny-llada'/'config.json').read_text())['mask_token_id'] == llada.mask_id
    assert json.loads((DATA/'tiny-dream'/'generation_config.json').read_text())['mask_token_id'] == dream.mask_id
    b = _batch(llada); h = llada.embed(b['x'])
    out = llada.blocks[0](h, attention_bias=None, layer_past=None, use_cache=False)
    assert isinstance(out, tuple) and out[1] is None
    with pytest.raises(ValueError, match='position_embeddings'): dream.blocks[0](dream.embed(b['x']))
    with pytest.raises(ValueError, match='boolean'): dream.model(b['x'], attention_mask=b['attention_mask'])

def test_block_by_block_equals_the_model_with_left_padding(dllm):
    b = _batch(dllm); x, am = b['x'], b['attention_mask']
    assert (am == 0).any()
    with torch.no_grad(): assert torch.allclose(dllm.head(dllm.run_blocks(dllm.embed(x), am)), dllm.logits(x, am), atol=1e-5)

def test_dream_positions_ignore_left_padding_and_logits_shift(dream):
    sp = make_splits(0)['sort']['test']; short, long = min(sp.prompts, key=len), max(sp.prompts, key=len)
    b = encode_batch(dream.tokenizer, [short, long], None); x, am = b['x'], b['attention_mask']
    r = int((am[0] == 0).sum()); assert r > 0
    with torch.no_grad():
        padded = dream.logits(x, am)[0, r:]; alone = dream.logits(x[:1, r:])[0]
        raw = dream.model(x, **dream.family.model_inputs(am)).logits
    # position ids count real tokens only (the first real position's shifted logits come from the pad before it: skip it)
    assert torch.allclose(padded[1:], alone[1:], atol=1e-4)
    assert torch.equal(dream.logits(x, am)[:, 1:], raw[:, :-1])

@pytest.mark.parametrize('family', ['llada', 'dream'])
def test_remote_code_directory_through_the_compat_layer(tmp_path, family):
    src = DATA/f'tiny-{family}'; d = legacy_checkpoint(src, tmp_path/'legacy', family)
    with pytest.raises(ValueError, match='trust_remote_code=True'): load_dllm(d)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); m = load_dllm(d, trust_remote_code=True)
    fixes = [str(i.message) for i in w if 'fair-calib-nb compat' in str(i.message)]
    assert len(fixes) == (3 if family == 'llada' else 4) and m.family.name == family
    ref = load_dllm(f'tiny-{family}'); b = _batch(ref)
    with torch.no_grad(): assert torch.equal(m.logits(b['x'], b['attention_mask']), ref.logits(b['x'], b['attention_mask']))

@pytest.mark.slow
def test_student_of_a_remote_code_model_reloads_in_a_fresh_process(tmp_path):
    from fair_calib_nb.calib import calibrate, CalibConfig
    from fair_calib_nb.student import save_student
    from fair_calib_nb.tasks import calib_pairs
    d = legacy_checkpoint(DATA/'tiny-dream', tmp_path/'legacy', 'dream')
    teacher = load_dllm(d, trust_remote_code=True)
    st = calibrate(teacher, *calib_pairs(make_splits(0), 8), CalibConfig(method='quarot'), progress=False)
    p = save_student(st, tmp_path/'student')
    assert {'modeling_dream.py', 'configuration_dream.py'} <= {f.name for f in p.iterdir()}
    b = _batch(teacher); torch.save(b, tmp_path/'b.pt')
    with torch.no_grad(): torch.save(st.logits(b['x'], b['attention_mask']), tmp_path/'want.pt')
    code = (f"import torch; from fair_calib_nb.student import load_student; b = torch.load(r'{tmp_path/'b.pt'}')\n"
            f"try: load_student(r'{p}')\nexcept ValueError as e: assert 'trust_remote_code=True' in str(e)\n"
            "else: raise SystemExit('loaded without trust')\n"
            f"s = load_student(r'{p}', trust_remote_code=True)\n"
            f"assert torch.equal(s.logits(b['x'], b['attention_mask']), torch.load(r'{tmp_path/'want.pt'}'))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-3000:]

def test_bad_checkpoints_are_refused(tmp_path):
    with pytest.raises(ValueError, match='neither a shipped model'): load_dllm('GSAI-ML/LLaDA-8B-Instruct')
    with pytest.raises(ValueError, match='no config.json'): load_dllm(tmp_path)
    (tmp_path/'config.json').write_text(json.dumps({'model_type': 'gpt2', 'architectures': ['GPT2LMHeadModel']}))
    with pytest.raises(ValueError, match="model_type 'gpt2'.*GPT2LMHeadModel"): load_dllm(tmp_path)
    d = tmp_path/'nomask'; shutil.copytree(DATA/'tiny-llada', d)                     # LLaDA's tokenizer has no mask token:
    cfg = json.loads((d/'config.json').read_text()); cfg['mask_token_id'] = None; (d/'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match='names a mask token'): load_dllm(d)       # without the config's id, nothing does
    with pytest.raises(ValueError, match='exceeds the maximum length'): load_dllm('tiny-llada').logits(torch.full((1, 200), 9))
