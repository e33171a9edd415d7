"""Operating points from *unlabeled* traffic: thresholds that send a target share to premium.

A team with no outcomes yet still knows its budget ("at most 30% of requests on premium"). Like
RouteLLM's ``calibrate_threshold --strong-model-pct``, the threshold is a quantile of the model's
own scores on a sample of the team's requests: the calibrated risk P(needs more than standard)
above which a request goes to premium is chosen so that ``premium_share`` of the sample is above
it. Such a point promises a *share*, not a quality: nothing here knows which requests were
answered well, so its validation figures are the shares on the sample it was calibrated on.

The economy threshold stays the base operating point's (or is set from ``economy_share``), and the
premium threshold is searched among the requests above it. Only when the base point leaves fewer
requests above economy than the premium share asks for is the economy threshold lowered to the
premium one (then premium depends on one risk alone, and the share holds).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.calibration import choose_tiers
from router_ml.tiers import TIERS


@dataclass(frozen=True)
class ShareCalibration:
    """The thresholds found and the tier shares they give on the calibration sample."""

    thresholds: tuple[float, float]
    shares: dict[str, float]
    n_requests: int

    def operating_point(self, name: str, calibrated_on: dict[str, Any]) -> dict[str, Any]:
        """The ``metadata.json`` entry of this point (the runtime's ``OperatingPoint`` format)."""
        return {
            "name": name,
            "target_under_routing": None,
            "thresholds": dict(zip(TIERS[:-1], self.thresholds, strict=True)),
            "validation": {
                "n": self.n_requests,
                **{f"{tier}_share": share for tier, share in self.shares.items()},
            },
            "calibrated_on": {"unlabeled": True, **calibrated_on},
        }


def operating_point_name(premium_share: float, economy_share: float | None) -> str:
    name = f"premium_share_{premium_share:g}"
    return name if economy_share is None else f"{name}_economy_share_{economy_share:g}"


def calibrate_shares(
    risks: np.ndarray,
    premium_share: float,
    base_thresholds: tuple[float, float],
    economy_share: float | None = None,
) -> ShareCalibration:
    """Thresholds on ``risks`` ``(n, 2)`` that route ``premium_share`` of the rows to premium.

    Risks of a calibrated model are step functions with many ties, so an exact share may be out
    of reach: the threshold whose share is nearest the target is taken, and of two equally near
    the one sending more to premium (when unsure, escalate). The achieved shares are returned.
    """
    risks = np.asarray(risks, dtype=np.float64)
    if risks.ndim != 2 or risks.shape[1] != len(TIERS) - 1 or risks.shape[0] == 0:
        raise ValueError(f"risks must have shape (n > 0, {len(TIERS) - 1}), got {risks.shape}")
    _check_share(premium_share, "premium_share")
    if economy_share is not None:
        _check_share(economy_share, "economy_share")
        if economy_share + premium_share > 1.0 + 1e-12:
            raise ValueError(
                f"economy_share {economy_share} + premium_share {premium_share} exceed 1"
            )
    # economy iff risk above economy < t0; premium iff both risks are at or above theirs.
    if economy_share is None:
        economy = float(base_thresholds[0])
    else:
        economy = _threshold_for_share(risks[:, 0], economy_share, at_or_above=False)
    above_economy = risks[:, 0] >= economy
    if above_economy.mean() >= premium_share - 1e-12:
        standard = _threshold_for_share(risks[:, 1], premium_share, True, above_economy)
    else:
        # The base economy threshold leaves too few requests above economy for the share:
        # lower it to the premium threshold, which makes "premium" depend on one risk alone.
        standard = _threshold_for_share(risks[:, 1], premium_share, at_or_above=True)
        economy = min(economy, standard)
    thresholds = (economy, standard)
    chosen = choose_tiers(risks, thresholds)
    shares = {tier: float(np.mean(chosen == k)) for k, tier in enumerate(TIERS)}
    return ShareCalibration(thresholds, shares, int(risks.shape[0]))


def _check_share(share: float, name: str) -> None:
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {share}")


def _threshold_for_share(
    values: np.ndarray, share: float, at_or_above: bool, among: np.ndarray | None = None
) -> float:
    """The threshold t whose share of rows with ``values >= t`` (or ``< t``) is nearest ``share``.

    ``among`` restricts the rows that can be selected (the share stays over all rows).
    Candidates are the distinct values plus one above them all (nobody selected); ties in
    distance go to the smaller threshold, which sends more to premium (``at_or_above``) or fewer
    to economy: both escalate. Thresholds stay in [0, 1], the range a model accepts: a risk of
    exactly 1 (a request the coverage rule or the task table sends up) is never accepted below.
    """
    selectable = np.ones(values.shape, dtype=bool) if among is None else among
    candidates = np.unique(
        np.minimum(np.append(np.unique(values), np.nextafter(values.max(), np.inf)), 1.0)
    )
    if at_or_above:
        shares = np.array([np.mean(selectable & (values >= t)) for t in candidates])
    else:
        shares = np.array([np.mean(selectable & (values < t)) for t in candidates])
    distance = np.abs(shares - share)
    nearest = np.flatnonzero(distance <= distance.min() + 1e-12)
    return float(candidates[nearest[0]])


def write_calibrated_copy(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    point: dict[str, Any],
    make_default: bool = True,
) -> Path:
    """Copy the model directory to ``out_dir`` with ``point`` added to its operating points.

    The source is never modified; ``out_dir`` must not exist yet (or be empty), so a copy never
    silently replaces another model. A stored point of the same name is replaced. The copy is
    loaded back before returning, so a broken result fails here and not in a gateway.
    """
    from router_ml.model import TierModel, read_metadata, write_metadata

    source, out = Path(model_dir), Path(out_dir)
    metadata = read_metadata(source)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not empty; choose a new directory")
    shutil.copytree(source, out, dirs_exist_ok=True)
    points = [op for op in metadata["operating_points"] if op.get("name") != point["name"]]
    metadata["operating_points"] = [*points, point]
    if make_default:
        metadata["default_operating_point"] = point["name"]
    write_metadata(out, metadata)
    card = out / "MODEL_CARD.md"
    if card.is_file():
        with card.open("a", encoding="utf-8") as handle:
            handle.write(_card_section(point, make_default))
    TierModel.load(out)
    return out


def _card_section(point: dict[str, Any], made_default: bool) -> str:
    shares = point["validation"]
    on = point["calibrated_on"]
    thresholds = ", ".join(f"{t} {v:.4f}" for t, v in point["thresholds"].items())
    return (
        f"\n## Operating point `{point['name']}` (calibrated on unlabeled traffic)\n\n"
        f"Added by `router-ml calibrate` from {shares['n']} requests of `{on.get('requests')}`"
        f" (sha256 {on.get('sha256')}){'; the default' if made_default else ''}. Thresholds: "
        f"{thresholds}. Tier shares on those requests: "
        + ", ".join(f"{t} {shares[f'{t}_share']:.1%}" for t in TIERS)
        + ". No outcomes were used: this point fixes a spend share, not a quality; measure "
        "under-routing on labeled traffic (`router-ml eval`) before trusting it.\n"
    )
