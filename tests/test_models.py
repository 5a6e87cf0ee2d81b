import json, shutil, pytest, torch
from transformers import AutoModel
import fair_calib_nb
from fair_calib_nb.models import *
from fair_calib_nb.tasks import build_tokenizer, encode_batch, make_splits

def _batch(dllm, n=16):
    sp = make_splits(0)['add']['test']
    return encode_batch(dllm.tokenizer, sp.prompts[:n], sp.answers[:n])

def test_automodel_loads_shipped():
    for name, cls in [('tiny-llada', TinyLLaDAModelLM), ('tiny-dream', TinyDreamModel)]:
        m = AutoModel.from_pretrained(DATA/name)
        assert isinstance(m, cls)

def test_module_names_match_real_models(llada, dream):
    assert {'q_proj', 'k_proj', 'v_proj', 'attn_out', 'ff_proj', 'up_proj', 'ff_out'} <= dict(llada.blocks[0].named_children()).keys()
    names = {n for n, _ in dream.blocks[0].named_modules()}
    assert {'self_attn.q_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'} <= names
    assert llada.blocks is llada.model.model.transformer.blocks and dream.blocks is dream.model.model.layers

def test_save_load_round_trip(dllm, tmp_path):
    b = _batch(dllm)
    dllm.model.save_pretrained(tmp_path); dllm.tokenizer.save_pretrained(tmp_path)
    again = load_dllm(tmp_path)
    assert torch.equal(dllm.logits(b['x'], b['attention_mask']), again.logits(b['x'], b['attention_mask']))

def test_dream_shift_alignment(dream):
    b = _batch(dream); x, am = b['x'], b['attention_mask']
    raw = dream.model(input_ids=x, attention_mask=am).logits
    al = dream.logits(x, am)
    assert torch.equal(al[:, 1:], raw[:, :-1])
    # row i of the adapter predicts token i: mask one answer character of a clean `reverse` sequence and read it back
    sp = make_splits(0)['reverse']['test']
    b = encode_batch(dream.tokenizer, sp.prompts[:64], sp.answers[:64]); x, am, P = b['x'], b['attention_mask'], b['prompt_length']
    xm = x.clone(); xm[:, P + 2] = dream.mask_id
    hit = lambda lg: (lg.argmax(-1) == x[:, P + 2]).float().mean()
    assert hit(dream.logits(xm, am)[:, P + 2]) > 0.9
    assert hit(dream.logits(xm, am)[:, P + 2]) > hit(raw_rows := dream.model(input_ids=xm, attention_mask=am).logits[:, P + 2]) + 0.5

def test_block_helpers_reproduce_logits(dllm):
    b = _batch(dllm); x, am = b['x'], b['attention_mask']
    with torch.no_grad():
        h = dllm.run_blocks(dllm.embed(x), am)
        assert torch.allclose(dllm.head(h), dllm.logits(x, am), atol=1e-5)

def test_bad_inputs(tmp_path, llada):
    with pytest.raises(ValueError, match='neither a shipped model'): load_dllm('GSAI-ML/LLaDA-8B-Instruct')
    with pytest.raises(ValueError, match='no config.json'): load_dllm(tmp_path)
    (tmp_path/'config.json').write_text(json.dumps({'model_type': 'gpt2'}))
    with pytest.raises(ValueError, match="model_type 'gpt2'"): load_dllm(tmp_path)
    x = torch.full((1, 200), 5)
    with pytest.raises(ValueError, match='exceeds the maximum length'): llada.logits(x)

def test_tokenizer_without_mask_token(tmp_path):
    src = DATA/'tiny-llada'
    for f in src.iterdir():
        if f.is_file(): shutil.copy(f, tmp_path/f.name)
    cfg = json.loads((tmp_path/'tokenizer_config.json').read_text()); cfg.pop('mask_token', None)
    (tmp_path/'tokenizer_config.json').write_text(json.dumps(cfg))
    sp = tmp_path/'special_tokens_map.json'
    if sp.exists(): d = json.loads(sp.read_text()); d.pop('mask_token', None); sp.write_text(json.dumps(d))
    with pytest.raises(ValueError, match='mask token'): load_dllm(tmp_path)
