"""The online customer store: save / load, look-ups, versioned with the model's MLflow run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pit.history import aggregate_columns
from features.pit.master_asof import MASTER_ATTRIBUTES
from serving.store import CustomerStore, empty_store, load_store_for_run, log_store

AGG = aggregate_columns((90, 365))


def test_save_and_load_round_trip(world, tmp_path):
    world.store.save(tmp_path / "s")
    back = CustomerStore.load(tmp_path / "s")
    assert back.as_of == world.store.as_of == world.last_refresh
    pd.testing.assert_frame_equal(back.table, world.store.table, check_dtype=False)
    assert back.meta["n_customers"] == world.store.n_customers > 0


def test_lookup_gives_each_item_its_customer_and_blanks_for_strangers(world):
    ids = world.store.table["customer_id"].tolist()[:3]
    aggs, attrs = world.store.lookup([ids[1], "nobody", ids[1], ids[0]], AGG,
                                     tuple(MASTER_ATTRIBUTES))
    table = world.store.table.set_index("customer_id")
    assert aggs["cust_n_posted"].tolist() == [table.loc[ids[1], "cust_n_posted"], 0,
                                              table.loc[ids[1], "cust_n_posted"],
                                              table.loc[ids[0], "cust_n_posted"]]
    assert pd.isna(aggs.loc[1, "cust_last_payment_time"])
    assert np.isnan(aggs.loc[1, "cust_max_days_late"])
    assert attrs["risk_category"].isna().tolist() == [False, True, False, False]
    assert np.isnan(attrs.loc[1, "credit_limit"])


def test_an_empty_store_knows_nobody():
    store = empty_store("v")
    aggs, attrs = store.lookup(["a", "b"], AGG, tuple(MASTER_ATTRIBUTES))
    assert (aggs["cust_n_cleared"] == 0).all() and attrs["collector"].isna().all()
    arrays, cats = store.lookup_arrays(np.array(["a", None], dtype=object), AGG,
                                       tuple(MASTER_ATTRIBUTES))
    assert (arrays["cust_n_cleared"] == 0).all() and pd.isna(cats["collector"]).all()


def test_lookup_arrays_hold_the_lookup_values(world):
    """The request path's look-up: the same values, strings as Categoricals."""
    ids = world.store.table["customer_id"].tolist()
    wanted = [ids[4], "nobody", ids[0], ids[4], None, ids[-1]]
    aggs, attrs = world.store.lookup(wanted, AGG, tuple(MASTER_ATTRIBUTES))
    arrays, cats = world.store.lookup_arrays(np.array(wanted, dtype=object), AGG,
                                             tuple(MASTER_ATTRIBUTES))
    assert list(arrays) == list(aggs.columns)
    for col in aggs.columns:
        np.testing.assert_array_equal(arrays[col], aggs[col].to_numpy(), err_msg=col)
    np.testing.assert_array_equal(cats["credit_limit"], attrs["credit_limit"].to_numpy())
    for col in ("risk_category", "customer_segment", "collector"):
        assert isinstance(cats[col], pd.Categorical)
        assert pd.Series(cats[col]).astype("str").tolist() == attrs[col].tolist(), col
    assert pd.isna(cats["risk_category"][1]) and not pd.isna(cats["risk_category"][0])


def test_duplicate_customers_are_refused(world):
    table = pd.concat([world.store.table.head(2), world.store.table.head(1)])
    with pytest.raises(ValueError, match="several rows"):
        CustomerStore(table=table, as_of=world.store.as_of, meta={})


def test_logged_beside_the_run_and_loaded_back(world, tmp_path):
    import mlflow

    from training import registry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with registry.run("store-test", "r", uri) as active:
        mlflow.log_param("x", 1)
    run_id = active.info.run_id
    assert load_store_for_run(run_id, uri) is None
    log_store(world.store, run_id, uri)
    back = load_store_for_run(run_id, uri)
    assert back.n_customers == world.store.n_customers and back.as_of == world.store.as_of


def test_a_missing_store_folder_is_named_and_not_created(tmp_path):
    missing = tmp_path / "nowhere" / "store"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        CustomerStore.load(missing)
    assert not missing.exists() and not missing.parent.exists()
    missing.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="has no customer_history.parquet"):
        CustomerStore.load(missing)


def test_a_missing_or_corrupt_registry_is_named_and_nothing_is_created(tmp_path, monkeypatch):
    """MLflow would create an empty SQLite store at a wrong path and then report a missing
    model; the loader refuses first, naming the file and what is missing."""
    from serving.loading import StoreUnavailable, load_serving_model

    db = tmp_path / "models" / "mlflow.db"
    monkeypatch.delenv("PAYDELAY_RELEASE", raising=False)
    monkeypatch.delenv("PAYDELAY_STORE_PATH", raising=False)
    with pytest.raises(StoreUnavailable, match=f"{db} does not exist"):
        load_serving_model(tracking_uri=f"sqlite:///{db}")
    assert not db.exists() and not db.parent.exists()
    db.parent.mkdir()
    db.write_bytes(b"SELECT * FROM secrets; not a database" * 100)
    with pytest.raises(StoreUnavailable, match=f"{db} is not a readable MLflow database"):
        load_serving_model(tracking_uri=f"sqlite:///{db}")
