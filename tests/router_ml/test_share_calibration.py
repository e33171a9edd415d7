"""Operating points from unlabeled traffic: a target premium share, written into a model copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_ml.cli import main
from router_ml.model import TierModel
from router_ml.router import Router
from router_ml.share_calibration import calibrate_shares

REPO = Path(__file__).resolve().parents[2]


def test_premium_share_is_met_on_continuous_risks() -> None:
    rng = np.random.default_rng(0)
    above_standard = rng.uniform(0, 0.6, 1000)
    risks = np.column_stack([np.minimum(above_standard + 0.2, 1.0), above_standard])
    result = calibrate_shares(risks, 0.3, base_thresholds=(0.5, 0.5))
    assert result.shares["premium"] == pytest.approx(0.3, abs=0.001)
    assert result.thresholds[0] == 0.5  # the base point's economy threshold is kept
    assert result.shares["economy"] == pytest.approx(np.mean(risks[:, 0] < 0.5))
    assert sum(result.shares.values()) == pytest.approx(1.0)
    # A base economy threshold leaving only ~8% above economy is lowered so 30% can hold.
    lowered = calibrate_shares(risks, 0.3, base_thresholds=(0.75, 0.5))
    assert lowered.shares["premium"] == pytest.approx(0.3, abs=0.001)
    assert lowered.thresholds[0] <= lowered.thresholds[1]


def test_ties_are_broken_toward_premium() -> None:
    # Step-function risks: half the rows tie at 0.4, so 30% is out of reach: 50% or 0%.
    risks = np.array([[0.9, 0.4]] * 50 + [[0.1, 0.05]] * 50)
    result = calibrate_shares(risks, 0.25, base_thresholds=(0.2, 0.3))
    assert result.shares["premium"] == 0.5  # equally near 0% and 50%: escalate


def test_economy_share_can_be_fixed_too() -> None:
    rng = np.random.default_rng(1)
    economy_risk = rng.uniform(0, 1, 2000)
    risks = np.column_stack([economy_risk, economy_risk * rng.uniform(0, 1, 2000)])
    result = calibrate_shares(risks, 0.2, base_thresholds=(0.5, 0.5), economy_share=0.5)
    assert result.shares["premium"] == pytest.approx(0.2, abs=0.002)
    assert result.shares["economy"] == pytest.approx(0.5, abs=0.002)


@pytest.mark.parametrize(
    ("share", "economy", "fragment"),
    [(1.5, None, "premium_share"), (0.6, 0.6, "exceed 1"), (-0.1, None, "premium_share")],
)
def test_impossible_shares_are_refused(share: float, economy: float | None, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        calibrate_shares(np.full((10, 2), 0.5), share, (0.5, 0.5), economy)


def write_requests(path: Path, n: int) -> Path:
    """``n`` requests shaped like the tiny model's training traffic (mostly in covered ground),
    plus two bad lines."""
    from fixtures import generate_records

    lines = [
        json.dumps({"id": f"r{i}", "request": record["request"]})
        for i, record in enumerate(generate_records(n, seed=7))
    ]
    path.write_text("\n".join([*lines, "{not json", '{"messages": []}']) + "\n")
    return path


def test_cli_writes_a_copy_whose_default_point_sends_the_share_to_premium(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = write_requests(tmp_path / "mine.jsonl", 200)
    original = (tiny_model_dir / "metadata.json").read_text()
    out = tmp_path / "calibrated"
    code = main(
        [
            "calibrate",
            "--requests",
            str(requests),
            "--premium-share",
            "0.3",
            "--model",
            str(tiny_model_dir),
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"{requests}:201" in captured.err and f"{requests}:202" in captured.err  # bad, skipped
    assert "only 200 requests" in captured.err  # small-sample warning
    assert (tiny_model_dir / "metadata.json").read_text() == original  # source untouched
    model = TierModel.load(out)
    assert model.default_operating_point.name == "premium_share_0.3"
    reported = json.loads(captured.out)["validation"]["premium_share"]

    # The share is that of the router users run: out-of-range requests escalated included.
    router = Router.load(out)
    bodies = [json.loads(line)["request"] for line in requests.read_text().splitlines()[:200]]
    routed = [d.tier for d in router.route_batch(bodies)]
    assert routed.count("premium") / len(routed) == pytest.approx(reported)
    assert abs(reported - 0.3) <= 0.1  # the tiny model's risks are coarse steps
    assert "premium_share_0.3" in (out / "MODEL_CARD.md").read_text()

    # A second run into the same directory is refused: no silent replacement of a model.
    again = ["calibrate", "--requests", str(requests), "--premium-share", "0.2"]
    assert main([*again, "--model", str(tiny_model_dir), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
