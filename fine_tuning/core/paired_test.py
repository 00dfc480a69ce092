"""McNemar's exact test: is one model really better than another on the same prompts?

Two models answered the same held-out prompts. Prompts both got right or both got wrong say
nothing about which is better; only the discordant pairs do: `challenger_right` prompts only the
challenger got right, `champion_right` only the champion. If the two were equally good, each
discordant prompt would fall either way with probability 1/2, so the split is Binomial(n, 1/2)
with n = b + c. The two-sided exact p-value is the chance of a split at least as lopsided:
p = min(1, 2 * P(X <= min(b, c))). Exact integer arithmetic (math.comb), so it holds for any
test-set size without scipy. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import comb


def mcnemar_exact_p(challenger_right: int, champion_right: int) -> float:
    """Two-sided p-value of McNemar's exact test on the discordant pair counts (1.0 when there are none)."""
    if challenger_right < 0 or champion_right < 0:
        raise ValueError(f"discordant counts must be >= 0, got {challenger_right} and {champion_right}")
    n = challenger_right + champion_right
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(challenger_right, champion_right) + 1))
    # Python divides big integers exactly before rounding to float, so tiny p-values stay accurate.
    return min(1.0, 2 * tail / 2**n)


@dataclass(frozen=True)
class DiscordantPairs:
    """Prompts exactly one of the two models got right."""

    challenger_right: int
    champion_right: int

    @property
    def total(self) -> int:
        """How many prompts the models disagree on (right vs wrong)."""
        return self.challenger_right + self.champion_right

    @property
    def p_value(self) -> float:
        """McNemar's exact two-sided p-value for these pairs."""
        return mcnemar_exact_p(self.challenger_right, self.champion_right)

    def to_json(self) -> dict[str, int]:
        """As recorded in metadata."""
        return {"challenger_right": self.challenger_right, "champion_right": self.champion_right}


def discordant_pairs(challenger: Mapping[str, bool], champion: Mapping[str, bool]) -> DiscordantPairs:
    """Count the discordant pairs of two models' outcomes (prompt id -> answered right) on the same prompts.

    Raises ValueError when the prompts differ: a paired test needs both models on every prompt.
    """
    if challenger.keys() != champion.keys():
        only = sorted(set(challenger) ^ set(champion))
        raise ValueError(
            f"a paired test needs both models' answers on the same prompts; {len(only)} prompts were answered "
            f"by one model only (e.g. {only[:3]})"
        )
    challenger_right = sum(1 for key, right in challenger.items() if right and not champion[key])
    champion_right = sum(1 for key, right in champion.items() if right and not challenger[key])
    return DiscordantPairs(challenger_right, champion_right)
