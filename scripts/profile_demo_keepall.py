"""ERASE's fixed cost on the demo model: a keep-all schedule's prefill against the unpatched one, by part.

    HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE python scripts/profile_demo_keepall.py

The page sample; 40 generate(max_new_tokens=1) calls after 3 warm-ups, base / keep-all / base /
keep-all. Prefill CPU time from erase-bench's probe; the engine's and adapter's functions are
wrapped with CPU-time timers from outside (medians, ms; nested timers overlap: `_prefill`
contains the others except the layer hooks).
"""

import time, functools, statistics, torch, erase
from collections import defaultdict
import erase.engine as eng, erase.adapters.qwen2_5_vl as qa, erase.packing as pk
from erase_calibrate.bench.measure import Probe
from erase_calibrate.demo import tasks
from erase_calibrate.demo.model import load_demo
from erase_calibrate.demo.train import encode
torch.set_num_threads(2)
T = defaultdict(float)
def timed(name, fn):
    @functools.wraps(fn)
    def w(*a, **k):
        c0 = time.process_time()
        try: return fn(*a, **k)
        finally: T[name] += time.process_time() - c0
    return w
for owner, attr in [(eng.Engine, "_prefill"), (eng.Engine, "_entropies"), (eng.Engine, "_stage1"), (qa.Qwen25VLAdapter, "prepare_prefill"),
                    (qa.Qwen25VLAdapter, "prefill_kwargs"), (pk.Repack, "from_keep"), (eng.Engine, "_layer_pre"), (eng.Engine, "_layer_post"), (eng.Engine, "_entry_post")]:
    setattr(owner, attr, timed(f"{owner.__name__}.{attr}", getattr(owner, attr)))
model, processor = load_demo()
prof = erase.load_profile("demo")
item = tasks.make_item(0, seed=7, split="test", task="letter", background="page")
inputs = encode(processor, [item], with_answers=False)
def run(ratio, n=40):
    h = None if ratio is None else erase.apply(model, prof, final_keep_ratio=ratio)
    cpu = []
    try:
        for i in range(n + 3):
            T.clear()
            p = Probe(model, sync=lambda: None)
            with torch.no_grad(): model.generate(**inputs, max_new_tokens=1, do_sample=False)
            p.remove()
            if i >= 3: cpu.append((p.prefill_cpu_ms, dict(T)))
    finally:
        if h: h.remove()
    return cpu
for name, ratio in [("base", None), ("keep-all", 1.0), ("base", None), ("keep-all", 1.0)]:
    r = run(ratio)
    med = statistics.median(c for c, _ in r)
    keys = sorted({k for _, t in r for k in t})
    parts = {k: statistics.median(t.get(k, 0) for _, t in r) * 1e3 for k in keys}
    print(name, f"prefill CPU median {med:.2f} ms", {k: round(v, 2) for k, v in parts.items()})
