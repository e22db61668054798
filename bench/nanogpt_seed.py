# Runs nanoGPT's own train.py (from a checkout given on the command line) on its CPU recipe for one seed and prints
# one line `RESULT {json}`: the val/train loss of its step-2000 evaluation (eval_iters random batches) and the
# loss over the whole val split in consecutive block_size windows. Used by bench/shakespeare.ts.
#
# train.py is run as nanoGPT ships it, with two textual hooks that are checked to apply: the seed (train.py fixes
# 1337) and a call after each evaluation print, which measures the whole val split at the last step.
#
#   python3 nanogpt_seed.py prepare NANOGPT_DIR WORK_DIR INPUT_TXT
#   python3 nanogpt_seed.py train NANOGPT_DIR WORK_DIR SEED
import json
import os
import runpy
import shutil
import sys
import time

RECIPE = ['--device=cpu', '--compile=False', '--eval_iters=20', '--log_interval=1000', '--block_size=64', '--batch_size=12',
          '--n_layer=4', '--n_head=4', '--n_embd=128', '--max_iters=2000', '--lr_decay_iters=2000', '--dropout=0.0']

SEED_LINE = 'torch.manual_seed(1337 + seed_offset)'
EVAL_PRINT = '''print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")'''


def prepare(nanogpt, work, text):
    # nanoGPT's own data preparation: prepare.py reads input.txt beside itself (it downloads only when it is missing).
    data = os.path.join(work, 'data', 'shakespeare_char')
    os.makedirs(data, exist_ok=True)
    shutil.copy(text, os.path.join(data, 'input.txt'))
    shutil.copy(os.path.join(nanogpt, 'data', 'shakespeare_char', 'prepare.py'), os.path.join(data, 'prepare.py'))
    runpy.run_path(os.path.join(data, 'prepare.py'), run_name='__main__')


def train(nanogpt, work, seed):
    src_path = os.path.join(nanogpt, 'train.py')
    src = open(src_path).read()
    for needle in (SEED_LINE, EVAL_PRINT):
        if src.count(needle) != 1:
            sys.exit(f'{src_path}: expected exactly one `{needle}`; this nanoGPT version is not supported')
    src = src.replace(SEED_LINE, f'torch.manual_seed({seed} + seed_offset)')
    src = src.replace(EVAL_PRINT, EVAL_PRINT + '; _after_eval(losses)')
    os.chdir(work)
    if not os.path.exists('configurator.py'):
        shutil.copy(os.path.join(nanogpt, 'configurator.py'), 'configurator.py')
    sys.path.insert(0, nanogpt)
    import numpy as np
    import torch

    g = {'__name__': '__main__', '__file__': src_path}
    result = {'seed': seed}

    def after_eval(losses):
        if g['iter_num'] != g['max_iters']:
            return
        model, T = g['model'], g['block_size']
        ids = np.fromfile(os.path.join(g['data_dir'], 'val.bin'), dtype=np.uint16).astype(np.int64)
        n = (len(ids) - 1) // T
        x = torch.from_numpy(ids[:n * T]).view(n, T)
        y = torch.from_numpy(ids[1:n * T + 1]).view(n, T)
        model.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, n, 256):
                total += model(x[i:i + 256], y[i:i + 256])[1].item() * x[i:i + 256].shape[0]
        model.train()
        result.update(train_loss=float(losses['train']), val_loss=float(losses['val']), val_loss_full=total / n, windows=n)

    g['_after_eval'] = after_eval
    sys.argv = ['train.py', os.path.join(nanogpt, 'config', 'train_shakespeare_char.py'), *RECIPE, f'--out_dir=out-{seed}']
    t0 = time.time()
    exec(compile(src, src_path, 'exec'), g)
    result['seconds'] = time.time() - t0
    print('RESULT ' + json.dumps(result), flush=True)


if __name__ == '__main__':
    if sys.argv[1] == 'prepare':
        prepare(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        train(sys.argv[2], sys.argv[3], int(sys.argv[4]))
