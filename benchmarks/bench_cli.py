"""How fast `fair-calib` answers before it does any work: --help, --version, `run --help`, and refusals that need no
model (an existing output directory, an unknown model name, a bad option value), each as a fresh process, median of
`--reps` runs (target: help in under 2 s). Run alone: `python benchmarks/bench_cli.py [--reps 5]`."""
import argparse, statistics, subprocess, tempfile, time
from pathlib import Path

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0]); ap.add_argument('--reps', type=int, default=5)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp()); (tmp/'out').mkdir(); (tmp/'out'/'x').write_text('')
    cases = {'--help': ['--help'], '--version': ['--version'], 'run --help': ['run', '--help'],
             'existing output directory': ['--out', str(tmp/'out')], 'unknown model': ['--model', 'no-such-model', '--out', str(tmp/'o2')],
             'bad --calib value': ['--calib', 'lr=abc', '--out', str(tmp/'o3')]}
    print('| command | median s | exit status |\n|---|---|---|')
    for name, args in cases.items():
        ts, rc = [], None
        for _ in range(a.reps):
            t0 = time.time(); r = subprocess.run(['fair-calib', *args], capture_output=True, text=True)
            ts.append(time.time() - t0); rc = r.returncode
        print(f'| fair-calib {name} | {statistics.median(ts):.2f} | {rc} |', flush=True)

if __name__ == '__main__': main()
