"""Kept propensity models: only those trained with the running code's features score; a file
that does not load is skipped, not an error that would fail every build."""

from __future__ import annotations

from lakepulse.analytics import propensity
from lakepulse.core.settings import Settings
from lakepulse.warehouse.prediction_tables import load_propensity_models, save_propensity_model


def test_a_model_of_other_features_or_a_broken_file_is_not_used(tmp_path):
    settings = Settings(home=tmp_path)
    current = propensity.signature()
    older = {**current, "features": current["features"][:-1]}
    save_propensity_model(settings, "acme", {"a": "model"}, "t1", current)
    save_propensity_model(settings, "globex", {"another": "model"}, "t2", older)
    (settings.propensity_models_dir / "broken.joblib").write_bytes(b"not a pickle")
    loaded = load_propensity_models(settings.propensity_models_dir, current)
    assert list(loaded) == ["acme"]
    assert loaded["acme"]["model"] == {"a": "model"} and loaded["acme"]["fitted_at"] == "t1"
    assert sorted(load_propensity_models(settings.propensity_models_dir)) == ["acme", "globex"]
