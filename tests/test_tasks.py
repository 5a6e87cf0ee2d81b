import random, pytest, torch
from fair_calib_nb.tasks import *

def test_tokenizer_round_trip_and_specials():
    tok = build_tokenizer()
    for s in ['<add>47+85=', '<rev>hello=', '<sort>31415=']:
        assert tok.decode(tok(s, add_special_tokens=False)['input_ids']) == s
    assert tok.convert_ids_to_tokens([tok.mask_token_id, tok.pad_token_id, tok.eos_token_id]) == ['[MASK]', '[PAD]', '<eoa>']
    assert len({tok.mask_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id}) == 4
    ids = tok('ab', add_special_tokens=False)['input_ids'] + [tok.eos_token_id, tok.mask_token_id]
    assert tok.decode(ids, skip_special_tokens=True) == 'ab'

def test_saved_tokenizer_round_trip(tmp_path):
    from transformers import AutoTokenizer
    build_tokenizer().save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok.mask_token == '[MASK]' and tok.decode(tok('<rev>xyz=')['input_ids']) == '<rev>xyz='

def test_splits_are_disjoint_and_seeded():
    s1, s2 = make_splits(0), make_splits(0)
    for name, d in s1.items():
        assert not set(d['test'].prompts) & set(d['calib'].prompts)
        assert len(set(d['test'].prompts)) == len(d['test']) and len(set(d['calib'].prompts)) == len(d['calib'])
        assert d['test'].prompts == s2[name]['test'].prompts
    train = sample_train(random.Random(0), 5000, s1)
    assert not {p for _, p, _ in train} & held_out(s1)

def test_answers_are_correct():
    sp = make_splits(0, n_test=50, n_calib=0)
    for p, a in zip(sp['add']['test'].prompts, sp['add']['test'].answers):
        x, y = p[len('<add>'):-1].split('+'); assert int(x) + int(y) == int(a)
    for p, a in zip(sp['sort']['test'].prompts, sp['sort']['test'].answers):
        assert ''.join(sorted(p[len('<sort>'):-1])) == a
    for p, a in zip(sp['reverse']['test'].prompts, sp['reverse']['test'].answers):
        assert p[len('<rev>'):-1][::-1] == a

def test_encode_batch_layout_and_errors():
    tok = build_tokenizer()
    b = encode_batch(tok, ['<add>1+2=', '<rev>abcd='], ['3', 'dcba'], gen_length=8)
    assert b['x'].shape == (2, b['prompt_length'] + 8)
    assert decode_answers(tok, b['x'], b['prompt_length']) == ['3', 'dcba']
    assert (b['x'][:, b['prompt_length']:][b['x'][:, b['prompt_length']:] != tok.eos_token_id] != tok.mask_token_id).all()
    m = encode_batch(tok, ['<add>1+2='], gen_length=8)
    assert (m['x'][:, m['prompt_length']:] == tok.mask_token_id).all()
    with pytest.raises(ValueError, match='mask token'): encode_batch(tok, ['<add>1[MASK]2='])
    with pytest.raises(ValueError, match='empty'): encode_batch(tok, [])
    with pytest.raises(ValueError, match='unknown suite'): make_splits(0, suites=['nope'])
    with pytest.raises(ValueError, match='more than gen_length'): encode_batch(tok, ['<rev>a='], ['abcdefghij'], gen_length=4)
