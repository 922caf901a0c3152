"""The service reports its staleness (/metadata, Prometheus gauges) and warns about a request
whose as-of is far past the customer-history store's."""

from __future__ import annotations

import pandas as pd


def test_a_far_future_as_of_is_warned_and_a_near_one_is_not(world, open_state):
    from serving.validation import check_items

    store_as_of = world.store.as_of
    near = check_items(open_state, store_as_of + pd.Timedelta(days=3), world.bundle.categories,
                       history_as_of=store_as_of)
    far = check_items(open_state, store_as_of + pd.Timedelta(days=60), world.bundle.categories,
                      history_as_of=store_as_of)
    assert not any("after the customer-history store" in w for ws in near.warnings for w in ws)
    assert all(any("60 days after the customer-history store" in w for w in ws)
               for ws in far.warnings)


def test_metadata_and_gauges_report_model_and_store_age(world):
    from prometheus_client import REGISTRY

    from serving.handlers import metadata

    stale = metadata(world.model)["staleness"]
    assert stale["store_as_of"].startswith(str(world.store.as_of.date()))
    assert stale["model_age_days"] > stale["store_age_days"] > 0
    assert REGISTRY.get_sample_value("paydelay_store_age_days") is not None


def test_the_scoring_path_refreshes_the_gauges_at_most_once_a_minute(world, monkeypatch):
    from serving import staleness_metrics

    staleness_metrics.update(world.model)
    set_at = staleness_metrics._LAST_REFRESH
    staleness_metrics.refresh(world.model)  # a request right after: no new computation
    assert staleness_metrics._LAST_REFRESH == set_at
    monkeypatch.setattr(staleness_metrics, "_LAST_REFRESH", set_at - 61.0)
    staleness_metrics.refresh(world.model)  # a minute later: the gauges are set again
    assert staleness_metrics._LAST_REFRESH > set_at
