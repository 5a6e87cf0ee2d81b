"""Size and decoding throughput of the shipped models quantized to RTN W4A4 (NF4 blockwise weights, per-token INT4 activations):
full precision vs fake-quant (training form) vs deployed (bitsandbytes `Linear4bit`, its float32 dequantize-then-matmul path)
vs deployed with bitsandbytes' fused AVX512-BF16 CPU kernel (bf16 math, where the CPU has it).
Activation quantization is simulated (quantize-dequantize) and bitsandbytes multiplies in floating point: W4A4 here saves
weight memory, not time. Run alone (no other torch process): `python benchmarks/bench_quant.py [--threads 2]`."""
import argparse, statistics, tempfile, time
from pathlib import Path
import torch
from transformers.utils import logging as hf_logging
from fair_calib_nb.quant import quantize_model, deploy_model, model_bytes  # first: quiets bnb's import notice
from fair_calib_nb.student import save_student, load_student
import bitsandbytes.functional as BF
from fair_calib_nb.models import load_dllm, resolve_model_path
from fair_calib_nb.tasks import make_splits
from fair_calib_nb.decode import generate, default_decoding
hf_logging.disable_progress_bar()

def dir_bytes(p): return sum(f.stat().st_size for f in Path(p).iterdir() if f.is_file())

def throughputs(models:dict, prompts, batch, rounds):
    """Response positions decoded per second (default decoding: window 24, 12 steps, 3 blocks) for each model: one
    `generate` call of `batch` prompts per model per round, the models interleaved so background load hits all alike;
    the best and the median round are reported."""
    G = default_decoding(next(iter(models.values()))).gen_length
    for m in models.values(): generate(m, prompts[:batch], batch_size=batch, progress=False)    # warm-up
    rates = {k: [] for k in models}
    for r in range(rounds):
        for k, m in models.items():
            t = time.perf_counter(); generate(m, prompts[r*batch:(r+1)*batch], batch_size=batch, progress=False)
            rates[k].append(batch * G / (time.perf_counter() - t))
    return {k: (max(v), statistics.median(v)) for k, v in rates.items()}

if __name__ == '__main__':
    a = argparse.ArgumentParser(); a.add_argument('--threads', type=int, default=2)
    a.add_argument('--reps', type=int, default=3); a = a.parse_args()
    torch.set_num_threads(a.threads)
    prompts = [p for s in make_splits(0).values() for p in s['test'].prompts]
    print(f'torch {torch.__version__}, {a.threads} threads; bitsandbytes fused bf16 CPU kernel available: {bool(BF.has_avx512bf16())}')
    for name in ('tiny-llada', 'tiny-dream'):
        fp = load_dllm(name)
        fq = quantize_model(fp, 'W4A4')
        dep = deploy_model(fq)
        bf = deploy_model(quantize_model(fp, 'W4A4', bf16_cpu_kernel=True))
        with tempfile.TemporaryDirectory() as tmp:
            p = save_student(fq, Path(tmp)/'w4a4')
            disk_fp = (resolve_model_path(name)/'model.safetensors').stat().st_size
            disk_q, disk_q_all = (p/'model.safetensors').stat().st_size, dir_bytes(p)
            t = time.perf_counter(); load_student(p); t_load = time.perf_counter() - t
        m_fp, m_q = model_bytes(fp.model), model_bytes(dep.model)
        print(f'\n{name}: weights on disk FP {disk_fp/1e6:.2f} MB -> deployed W4A4 {disk_q/1e6:.2f} MB ({disk_fp/disk_q:.1f}x smaller; '
              f'whole directory {disk_q_all/1e6:.2f} MB, loads in {t_load:.2f} s)')
        print(f'{name}: in memory (params + buffers + absmax/codebook) FP {m_fp["total"]/1e6:.2f} MB -> deployed W4A4 '
              f'{m_q["total"]/1e6:.2f} MB ({m_fp["total"]/m_q["total"]:.1f}x smaller); deployed detail {m_q}')
        sub = prompts[:64]
        a_fq, a_dep, a_bf, a_fp = (generate(m, sub, batch_size=64, progress=False).answers for m in (fq, dep, bf, fp))
        print(f'{name}: answers on 64 prompts: deployed == fake-quant {sum(x == y for x, y in zip(a_dep, a_fq))}/64, '
              f'bf16 kernel == fake-quant {sum(x == y for x, y in zip(a_bf, a_fq))}/64, '
              f'fake-quant == FP {sum(x == y for x, y in zip(a_fq, a_fp))}/64')
        models = {'FP': fp, 'fake-quant': fq, 'deployed fp32': dep, 'deployed bf16 kernel': bf}
        for batch, rounds in ((64, a.reps), (1, 2 * a.reps)):
            res = throughputs(models, prompts, batch, rounds)
            print(f'{name} batch {batch:2d} (tok/s, best / median of {rounds} rounds): ' +
                  ', '.join(f'{k} {b:5.0f} / {m:5.0f} ({b/res["FP"][0]:.2f}x FP)' for k, (b, m) in res.items()))
