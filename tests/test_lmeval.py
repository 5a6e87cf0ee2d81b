"The lm-evaluation-harness model type on the shipped suites: the harness's score equals task_accuracy, answer for answer."
import pytest, torch
lm_eval = pytest.importorskip('lm_eval', reason='lm-eval is an optional extra: pip install -e ".[lmeval]" (the dev extra includes it)')
from fair_calib_nb.lmeval import run_lmeval, FairCalibLM, mc_loglikelihood, task_name
from fair_calib_nb.evaluate import task_accuracy
from fair_calib_nb.tasks import make_splits

@pytest.mark.slow
def test_harness_equals_task_accuracy(llada, tmp_path):
    sp = make_splits(0)
    res = run_lmeval(llada, ['fair_calib'], limit=12, out=tmp_path)
    acc, answers = task_accuracy(llada, sp, 'test', limit=12, progress=False, return_answers=True)
    assert res['accuracy'] == acc
    for suite in sp:
        s = sorted(res['samples'][task_name(suite)], key=lambda r: r['doc_id'])
        assert [r['arguments'][0][0] for r in s] == sp[suite]['test'].prompts[:12]        # exactly our prompt string
        assert [r['filtered_resps'][0] for r in s] == [a.strip() for a in answers[suite]]
    assert (tmp_path/'results.json').exists()

@pytest.mark.slow
def test_saved_student_scores_like_task_accuracy(llada, tmp_path):
    from fair_calib_nb.quant import quantize_model
    from fair_calib_nb.student import save_student, load_student
    p = save_student(quantize_model(llada, 'W4A4'), tmp_path/'s')
    res = run_lmeval(str(p), ['fair_calib_sort'], limit=12, out=tmp_path/'e')
    assert res['accuracy']['sort'] == task_accuracy(load_student(p), {'sort': make_splits(0)['sort']}, limit=12, progress=False)['sort']

def test_errors_and_single_token_loglikelihood(llada, tmp_path):
    with pytest.raises(ValueError, match=r"unknown lm-eval task\(s\) \['fair_calib_nope'\]"):
        run_lmeval(llada, ['fair_calib_nope'], limit=2, out=tmp_path)
    lm = FairCalibLM(dllm=llada, mc_num=4, mc_batch_size=4)
    with pytest.raises(NotImplementedError, match='does not define'): lm.loglikelihood_rolling([])
    ids = llada.tokenizer('<sort>321=', add_special_tokens=False)['input_ids']; t = llada.tokenizer('1', add_special_tokens=False)['input_ids']
    x = torch.tensor(ids + [llada.mask_id])[None]
    with torch.no_grad(): exact = llada.logits(x)[0, -1].log_softmax(-1)[t[0]].item()
    assert abs(mc_loglikelihood(lm, torch.tensor(ids), torch.tensor(t)) - exact) < 1e-4

def test_out_is_a_json_file_or_a_directory_and_a_failed_load_writes_nothing(llada, tmp_path):
    "`out='x.json'` writes that one file (it used to become a directory); a model that cannot load leaves no output behind."
    import json, os
    res = run_lmeval(llada, ['sort'], limit=2, out=tmp_path/'x.json')
    assert (tmp_path/'x.json').is_file() and json.loads((tmp_path/'x.json').read_text())['accuracy'] == res['accuracy']
    assert os.listdir(tmp_path) == ['x.json']
    with pytest.raises(ValueError, match='neither a shipped model'): run_lmeval(str(tmp_path/'nope'), ['sort'], limit=2, out=tmp_path/'d')
    assert not (tmp_path/'d').exists()
    (tmp_path/'f').write_text('')
    with pytest.raises(ValueError, match='exists and is not a directory'): run_lmeval(llada, ['sort'], limit=2, out=tmp_path/'f')


def test_pipeline_and_dist_do_not_import_lm_eval():
    "lm-eval is an optional extra: the pipeline (and the data-parallel module it uses) import without it."
    import subprocess, sys
    code = "import sys, fair_calib_nb.pipeline, fair_calib_nb.dist; assert 'lm_eval' not in sys.modules, 'lm_eval imported'"
    subprocess.run([sys.executable, '-c', code], check=True)


def test_module_defined_twice_in_one_process():
    "A second definition of the model class (the notebook run in a process that imported the library) is not refused."
    import importlib
    import fair_calib_nb.lmeval as m
    from lm_eval.api.registry import get_model
    first = get_model(m.MODEL_NAME)
    importlib.reload(m)
    assert get_model(m.MODEL_NAME) is first
