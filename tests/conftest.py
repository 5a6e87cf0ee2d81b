import os, pytest, torch
torch.set_num_threads(int(os.environ.get('FAIR_CALIB_THREADS', '2')))
from fair_calib_nb.models import load_dllm

@pytest.fixture(scope='session')
def llada(): return load_dllm('tiny-llada')

@pytest.fixture(scope='session')
def dream(): return load_dllm('tiny-dream')

@pytest.fixture(scope='session', params=['tiny-llada', 'tiny-dream'])
def dllm(request): return load_dllm(request.param)
