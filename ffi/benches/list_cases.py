"""`cargo xtask bench ffi`, the Python half: the same screen call as the Rust half (first page
of 50 open cases) on the same phone database, through the generated bindings; median of 201.

    python list_cases.py BENCH_DIR   (GRIDLINK_BINDINGS: the generated module's folder)
"""

import json
import os
import sys
import time

sys.path.insert(0, os.environ["GRIDLINK_BINDINGS"])
import gridlink as g  # noqa: E402

bench = json.load(open(os.path.join(sys.argv[1], "bench.json")))
app = g.FieldApp.open(g.AppConfig(
    database_path=bench["database_path"], photo_dir=bench["photo_dir"],
    server_url="http://127.0.0.1:9", device_id=bench["device_id"], device_name="bench",
    max_attempts=1))
query = g.CaseListQuery(open_only=True, limit=50)
assert len(app.list_cases(query).items) == min(50, bench["cases"])
samples = []
for _ in range(201):
    t = time.perf_counter()
    app.list_cases(query)
    samples.append((time.perf_counter() - t) * 1000.0)
samples.sort()
print(json.dumps({"bench": "ffi", "metric": "python_list_ms",
                  "value": round(samples[len(samples) // 2], 3), "unit": "ms"}))
