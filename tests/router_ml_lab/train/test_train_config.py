"""The hyperparameter file: complete, checked, refused with a clear message when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from router_ml_lab.train.config import load_config


def test_default_config_is_valid() -> None:
    config = load_config()
    assert config["operating_points"]["default"] in config["operating_points"]["targets"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["model"].pop("num_leaves"), "model: keys"),
        (lambda c: c.update(extra={}), "sections"),
        (lambda c: c["denoise"].update(method="magic"), "denoise.method"),
        (lambda c: c["operating_points"].update(default=0.3), "operating_points.default"),
        (lambda c: c["operating_points"].update(targets=[0.05, 1.5]), "targets"),
    ],
)
def test_bad_configs_are_refused(tmp_path: Path, edit: object, message: str) -> None:
    config = load_config()
    edit(config)  # type: ignore[operator]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=message):
        load_config(path)
    path.write_text("model: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(path)
