import os, pytest, torch
torch.set_num_threads(int(os.environ.get('FAIR_CALIB_THREADS', '2')))
from fair_calib_nb.models import load_dllm
from fair_calib_nb.tasks import make_splits, calib_pairs

def pytest_configure(config):
    config.addinivalue_line('markers', 'browser: drives headless Chromium (needs /usr/bin/chromium: bash tools/ci_setup.sh)')
    config.addinivalue_line('markers', 'slow: runs whole pipelines or fresh processes (tens of seconds)')

@pytest.fixture(scope='session')
def llada(): return load_dllm('tiny-llada')

@pytest.fixture(scope='session')
def dream(): return load_dllm('tiny-dream')

@pytest.fixture(scope='session', params=['tiny-llada', 'tiny-dream'])
def dllm(request): return load_dllm(request.param)

@pytest.fixture(scope='session')
def pairs(): return calib_pairs(make_splits(0), 12)
