"""The one place for analytics knobs: horizons, lifecycle thresholds and queue-priority weights.

Kept as plain constants (not environment variables) because they change the meaning of stored
results; edit them here and run ``make analytics`` again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEED = 7  # every random choice in bot/analytics (K-means starts, trees, samples) uses it


@dataclass(frozen=True)
class ChurnConfig:
    horizon_days: int = 90  # churned = no purchase in the next horizon_days
    train_cutoffs: int = 3  # stacked training snapshots, each horizon_days apart
    high_risk: float = 0.6  # churn probability from which a customer counts as at risk


@dataclass(frozen=True)
class SegmentConfig:
    k_min: int = 3  # at least three segments, so the names carry information
    k_max: int = 8
    silhouette_sample: int = 3000  # customers used for the silhouette score (all below this)


@dataclass(frozen=True)
class LifecycleConfig:
    new_days: int = 90  # first purchase within this many days -> new
    active_days: int = 90  # last purchase within this many days -> active (unless churn risk is high)
    lapsed_days: int = 180  # no purchase for this long -> lapsed
    won_back_gap_days: int = 180  # a return after a gap at least this long -> won back


@dataclass(frozen=True)
class PriorityConfig:
    """Queue priority = weighted sum of parts in 0..1; higher reaches a person first."""

    tier_weight: dict[str, float] = field(default_factory=lambda: {"standard": 0.0, "silver": 0.5, "gold": 1.0})
    w_tier: float = 0.25
    w_value: float = 0.35  # expected 12-month value, as a percentile among customers
    w_churn: float = 0.40  # churn risk
    # a customer both valuable and at risk: value percentile and churn risk at least these
    high_value_percentile: float = 0.75
    urgent_score: float = 0.7  # score from which a ticket is raised to "urgent"
    high_score: float = 0.5  # ... to "high"


@dataclass(frozen=True)
class AnalyticsConfig:
    churn: ChurnConfig = field(default_factory=ChurnConfig)
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    priority: PriorityConfig = field(default_factory=PriorityConfig)
    clv_horizon_days: int = 365
    few_orders: int = 2  # customers with at most this many purchases get segment-based recommendations


CONFIG = AnalyticsConfig()
