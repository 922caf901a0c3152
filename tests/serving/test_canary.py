"""The gate's canary: the candidate through the serving path, equal to the inference core; a
bundle broken on the way is refused with one line."""

from __future__ import annotations

import copy


def test_the_canary_passes_a_sound_bundle(world):
    from serving.canary import run_canary

    out = run_canary(world.bundle, world.rows, world.config, world.store, n_rows=50)
    assert out["ok"], out["detail"]
    assert out["rows"] == 50 and "equal to the inference core" in out["detail"]


def test_the_canary_refuses_a_bundle_that_cannot_be_served(world):
    from serving.canary import run_canary

    broken = copy.copy(world.bundle)
    broken.quantiles = {k: v for k, v in world.bundle.quantiles.items() if k != "p90"}
    out = run_canary(broken, world.rows, world.config, n_rows=20)
    assert not out["ok"] and out["detail"].startswith("the serving path failed")
