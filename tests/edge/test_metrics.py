import subprocess
import sys

import httpx

from core.settings import load_settings
from edge.app import create_app, running
from edge.metrics import EdgeCollector, EdgeMetrics, SnapshotFiles
from tests.edge.conftest import link

OTHER_PROCESS = """
import sys
from pathlib import Path
import os
from edge.metrics import EdgeMetrics, SnapshotFiles
m = EdgeMetrics()
for _ in range(7):
    m.observe_click("redirect", 0.002)
m.observe_click("fallback_geo", 0.5)
m.spooled = 3
SnapshotFiles(Path(sys.argv[1]), os.getpid()).write(m)
"""


def metric_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


async def test_metrics_show_clicks_and_latency(edge, publish):
    app, client = edge
    await publish(link(), link("paused", offer_status="paused"))
    for _ in range(3):
        assert (await client.get("/c/tok1")).status_code == 302
    assert (await client.get("/c/paused")).status_code == 302
    text = (await client.get("/metrics")).text
    assert metric_value(text, 'afftok_clicks_total{outcome="redirect"}') == 3
    assert metric_value(text, 'afftok_clicks_total{outcome="fallback_paused"}') == 1
    assert metric_value(text, "afftok_click_latency_seconds_count") == 4
    assert metric_value(text, 'afftok_click_latency_seconds_bucket{le="+Inf"}') == 4
    assert metric_value(text, "afftok_clicks_spooled_total") == 0
    assert metric_value(text, "afftok_clicks_lost_total") == 0


async def test_several_processes_are_summed_and_never_go_backwards(redis_url, redis_prefix, tmp_path, redis, keys, publish):
    metrics_dir = tmp_path / "metrics"
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(metrics_dir)], check=True, timeout=30)
    settings = load_settings({}, redis_url=redis_url, redis_prefix=redis_prefix, data_dir=tmp_path / "data",
                             spool_fsync=False, metrics_dir=str(metrics_dir))
    await publish(link())
    app = create_app(settings)
    async with running(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
        for _ in range(2):
            assert (await client.get("/c/tok1")).status_code == 302
        text = (await client.get("/metrics")).text
    assert metric_value(text, 'afftok_clicks_total{outcome="redirect"}') == 9
    assert metric_value(text, 'afftok_clicks_total{outcome="fallback_geo"}') == 1
    assert metric_value(text, "afftok_click_latency_seconds_count") == 10
    assert metric_value(text, "afftok_clicks_spooled_total") == 3
    # This process wrote its final snapshot at shutdown; a later process still counts both.
    assert len(list(metrics_dir.glob("edge-*.json"))) == 2
    later = EdgeMetrics()
    collected = {m.name: m for m in EdgeCollector(later, SnapshotFiles(metrics_dir, pid=1)).collect()}
    redirects = [s.value for s in collected["afftok_clicks"].samples if s.labels.get("outcome") == "redirect"]
    assert redirects == [9]
