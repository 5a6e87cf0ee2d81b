"""Optional: real LLaDA / Dream checkpoint directories (their published remote code) through every stage. Name them in
FAIR_CALIB_REAL_CHECKPOINTS (paths separated by ':'); without it the test is skipped and says so (pytest -rs).
For each directory: load (trust_remote_code), decode, Stage I prior, calibrate every method for one epoch (and GPTQ),
save, reload in a fresh process, identical logits."""
import os, subprocess, sys, pytest, torch

DIRS = [d for d in os.environ.get('FAIR_CALIB_REAL_CHECKPOINTS', '').split(':') if d]

@pytest.mark.slow
@pytest.mark.skipif(not DIRS, reason='no real checkpoint directories: set FAIR_CALIB_REAL_CHECKPOINTS=/path/to/llada:/path/to/dream')
@pytest.mark.parametrize('path', DIRS)
def test_real_checkpoint_through_every_stage(path, tmp_path):
    from fair_calib_nb.models import load_dllm
    from fair_calib_nb.decode import generate
    from fair_calib_nb.prior import build_prior, PriorConfig
    from fair_calib_nb.calib import calibrate, CalibConfig, prior_config, PRIOR_METHODS
    from fair_calib_nb.student import save_student
    t = load_dllm(path, trust_remote_code=True)
    prompts = ['1+1=', 'abc', 'hello world']; answers = ['2', 'cba', 'dlrow']
    g = generate(t, prompts, record=True, progress=False); assert len(g.answers) == 3 and g.trace.steps == 12
    x = g.x; am = torch.ones_like(x)
    for method, weights in [('rtn', 'rtn'), ('quarot', 'rtn'), ('flatquant', 'rtn'), ('fair', 'rtn'), ('decision', 'rtn'), ('flatquant', 'gptq')]:
        pr = build_prior(t, prompts, prior_config(method, PriorConfig(n_probe=6)), progress=False) if method in PRIOR_METHODS else None
        st = calibrate(t, prompts, answers, CalibConfig(method=method, weights=weights, epochs=1, batch_size=3), prior=pr, progress=False)
        out = save_student(st, tmp_path/f'{method}-{weights}')
        with torch.no_grad(): torch.save(st.logits(x, am), tmp_path/'want.pt')
        torch.save(x, tmp_path/'x.pt')
        code = (f"import torch; from fair_calib_nb.student import load_student; s = load_student(r'{out}', trust_remote_code=True); "
                f"x = torch.load(r'{tmp_path/'x.pt'}'); assert torch.equal(s.logits(x, torch.ones_like(x)), torch.load(r'{tmp_path/'want.pt'}'))")
        r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
        assert r.returncode == 0, (method, weights, r.stderr[-3000:])
