"""evaluate-model and compare-models on data whose classes the model does not know."""

from __future__ import annotations

import pytest

from conftest import colour_groups
from imgatlas import api
from imgatlas.cli import main
from imgatlas.errors import ConfigError

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture(scope="module")
def model(tmp_path_factory, cache_dir):
    root = colour_groups(tmp_path_factory.mktemp("unknown") / "img", COLOURS, 8,
                         shape=(32, 40), ext="png")
    ws = root.parent / "ws"
    api.scan(root, ws, labels_from_folders=True)
    api.embed(ws, backbone="test_tiny", cache_dir=cache_dir)
    api.train(ws, name="m", cache_dir=cache_dir)
    return ws / "models" / "m"


def test_images_of_unknown_classes_are_left_out_and_counted(model, tmp_path, cache_dir):
    data = colour_groups(tmp_path / "data", {**COLOURS, "yellow": (230, 220, 20)}, 4,
                         shape=(34, 40), ext="png")  # not the taught images
    res = api.evaluate_model(model, data, cache_dir=cache_dir)
    assert res["unknown_classes"] == ["yellow"] and res["n_unknown_class"] == 4
    assert res["n_images"] == 12
    assert "yellow" not in res["per_class"]


def test_data_with_no_known_class_is_refused(model, tmp_path, cache_dir, capsys):
    data = colour_groups(tmp_path / "data", {"yellow": (230, 220, 20), "grey": (128,) * 3}, 3,
                         shape=(32, 40), ext="png")
    with pytest.raises(ConfigError, match="None of the classes"):
        api.evaluate_model(model, data, cache_dir=cache_dir)
    code = main(["compare-models", "--model", str(model), "--model", str(model), str(data),
                 "--cache-dir", str(cache_dir)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "None of the classes" in err


def test_an_unknown_mcnemar_method_is_refused(model, tmp_path, cache_dir):
    with pytest.raises(ConfigError, match="method must be one of"):
        api.compare_models(model, model, tmp_path, method="bogus", cache_dir=cache_dir)
