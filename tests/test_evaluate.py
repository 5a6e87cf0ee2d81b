import copy, pytest, torch
from fair_calib_nb.decode import Trace
from fair_calib_nb.evaluate import *

def onehot_logits(ids, V=3, hi=5.0):
    return torch.nn.functional.one_hot(torch.tensor(ids), V).float() * hi

class Stub:
    "A 'model' whose logits for the teacher-forced states are fixed: rows are states (t0, t1), columns positions (prompt, 0, 1)."
    def __init__(self, ids): self.lg, self.name = onehot_logits(ids), 'stub'
    def logits(self, x, attention_mask=None): return self.lg[:x.shape[0]]

def toy_tf():
    z = torch.zeros(1, 2, 2)
    tr = Trace(commit_step=torch.tensor([[0, 1]]), tokens=torch.tensor([[0, 1]]), argmax=torch.tensor([[[0, 1], [0, 1]]]),
               prob=z + .9, entropy=z + .1, margin=z + .8, prompt=torch.tensor([[2]]), attention_mask=torch.ones(1, 3, dtype=torch.long),
               mask_id=2, config=dict(sampler='llada', steps=2, gen_length=2, block_length=2))
    teacher = Stub([[2, 0, 1], [2, 0, 1]])
    return teacher, TeacherForced('teacher', tr, window_logprobs(teacher, tr))

def test_frontier_metrics_hand_built():
    teacher, tf = toy_tf()
    m = frontier_metrics(teacher, tf)
    assert m['flip_rate'] == 0 and m['mean_disagree'] == 0 and m['never_agree'] == 0 and abs(m['kl']) < 1e-6
    # student: position 0 flips at its commit step (t0) and still disagrees after it (t1); position 1 agrees
    m = frontier_metrics(Stub([[2, 2, 1], [2, 2, 1]]), tf)
    assert m['frontier_hits'] == 2 and m['flip_rate'] == 0.5
    assert m['mean_disagree'] == 1.0 and m['never_agree'] == 1.0          # only position 0 has post-commit steps
    assert m['kl'] > 0 and m['kl_per_step'][1] < 1e-6                      # at t1 only position 1 is masked, and it agrees

def test_answer_agreement():
    a = answer_agreement({'add': ['1', '2', '3', '4']}, {'add': ['1', '2', '0', '4']})
    assert a['add'] == 0.75 and a['mean'] == 0.75

def test_harness_on_real_model_and_vocab_check(llada, tmp_path):
    from fair_calib_nb.tasks import make_splits
    sp = {k: v for k, v in make_splits(0).items() if k == 'add'}
    row = evaluate_student(llada, llada, sp, limit=16, progress=False)
    assert row['accuracy']['add'] > 0.5 and row['agreement']['mean'] == 1 and row['frontier']['flip_rate'] == 0
    save_results({('tiny-llada', 'FP'): row}, tmp_path)
    assert 'tiny-llada / FP' in (tmp_path / 'results.md').read_text()
    other = copy.copy(llada); other.tokenizer = copy.deepcopy(llada.tokenizer); other.tokenizer.add_tokens(['@'])
    with pytest.raises(ValueError, match='different tokenizer'): evaluate_student(llada, other, sp, limit=4, progress=False)
