"""Values an asset or check reads from its upstream assets' latest materialization metadata.

Steps hand each other small facts (a file's path and sha256, an uploaded file id, a model
name) through materialization metadata, never through pickled outputs.
"""

from typing import Any

import dagster as dg


def latest_metadata(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext,
    asset_key: dg.AssetKey | str | dg.AssetsDefinition,
) -> dict[str, Any]:
    """Plain metadata values of the latest materialization of `asset_key` on this instance.

    Raises `dg.Failure` naming the asset when it has never been materialized.
    """
    key = asset_key.key if isinstance(asset_key, dg.AssetsDefinition) else dg.AssetKey.from_coercible(asset_key)
    event = context.instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event is not None else None
    if materialization is None:
        raise dg.Failure(
            description=f"Asset {key.to_user_string()} has never been materialized; materialize it first."
        )
    return {name: value.value for name, value in materialization.metadata.items()}


