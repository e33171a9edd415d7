"""Dask runs give exactly the single-process results (a small LocalCluster, threads, 1 worker)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from measure_cli import run_measure

distributed = pytest.importorskip("distributed")

from router_ml_lab.measure.dataset import partitions  # noqa: E402
from router_ml_lab.measure.runner import LOCAL, map_partitions  # noqa: E402
from router_ml_lab.measure.scan import RouterSettings, scan_partition  # noqa: E402


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_analyze_on_dask_equals_the_single_process_report(
    traffic_dir: Path, tiny_model_dir: Path, tmp_path: Path, scheduler: str
) -> None:
    common = ["--model", str(tiny_model_dir), "--window-days", "1"]
    assert run_measure(["analyze", str(traffic_dir), "--out", str(tmp_path / "one"), *common]) == 0
    argv = ["analyze", str(traffic_dir), "--out", str(tmp_path / "dask"), "--dask", scheduler]
    assert run_measure([*argv, *common]) == 0
    single = json.loads((tmp_path / "one" / "summary.json").read_text())
    on_dask = json.loads((tmp_path / "dask" / "summary.json").read_text())
    assert single == on_dask and single["partitions"] == 2
    assert (tmp_path / "one" / "summary.md").read_text() == (
        tmp_path / "dask" / "summary.md"
    ).read_text()


def test_route_dataset_on_dask_writes_identical_files(
    traffic_dir: Path, tiny_model_dir: Path, tmp_path: Path, scheduler: str
) -> None:
    model = ["--model", str(tiny_model_dir)]
    assert (
        run_measure(["route-dataset", str(traffic_dir), "--out", str(tmp_path / "a"), *model]) == 1
    )
    argv = ["route-dataset", str(traffic_dir), "--out", str(tmp_path / "b"), "--dask", scheduler]
    assert run_measure([*argv, *model]) == 1  # the fixture's malformed line is reported
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["part-a.decisions.jsonl", "part-b.decisions.jsonl"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    lines = [json.loads(x) for x in (tmp_path / "a" / names[0]).read_text().splitlines()]
    assert {"id", "tier", "model", "source", "probabilities", "reason", "ood", "task_kind"} == set(
        lines[0]
    )


def test_drift_on_dask_gives_the_same_verdict(
    traffic_dir: Path, tiny_model_dir: Path, tmp_path: Path, scheduler: str
) -> None:
    runs = []
    for extra in ([], ["--dask", scheduler]):
        out = tmp_path / f"drift{len(extra)}"
        argv = ["drift", "--baseline", str(traffic_dir / "part-a.jsonl"), "--current"]
        argv += [str(traffic_dir / "part-b.jsonl"), "--out", str(out), "--model"]
        run_measure([*argv, str(tiny_model_dir), *extra])
        runs.append(json.loads((out / "drift.json").read_text()))
    assert runs[0] == runs[1]


def test_a_local_cluster_is_started_and_closed_by_default(
    traffic_dir: Path, tiny_model_dir: Path
) -> None:
    function = functools.partial(scan_partition, settings=RouterSettings(str(tiny_model_dir)))
    paths = partitions([traffic_dir])
    scans = map_partitions(function, paths, LOCAL, workers=1, processes=False)
    assert [len(s) for s in scans] == [len(s) for s in map(function, paths)]
