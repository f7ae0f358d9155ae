"""The ``mixed`` world: habitual households among BTYD-style occasional buyers.

Each user is habitual with probability ``habit_share`` (drawn in the latent stream); a habitual user
behaves as in :class:`~spendlab.datasets.worlds.habit.HabitWorld`, an occasional buyer as in the
``occasional`` BTYD profile (gamma-Poisson purchases, geometric churn). Both sub-worlds share the
calendar; the occasional part draws from its own seed stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spendlab.datasets.synth import SynthLatent, SynthWorld
from spendlab.datasets.worlds.habit import HabitLatent, HabitWorld

#: Seed offset of the occasional buyers' sub-world (its streams never meet the habit world's).
OCCASIONAL_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class MixedLatent:
    """One chunk: which users are habitual and both sub-worlds' latent draws (for every user)."""

    habitual: np.ndarray  # users: bool
    habit: HabitLatent
    occasional: SynthLatent


class MixedWorld(HabitWorld):
    """A seeded mixed population with the :class:`~spendlab.datasets.synth.SynthWorld` interface."""

    habit_share: float = 0.5

    def __init__(self, *, users: int, months: int, start: str = "2023-01-01", seed: int = 0,
                 chunk_users: int = 50_000) -> None:
        super().__init__(users=users, months=months, start=start, seed=seed, chunk_users=chunk_users)
        self.profile_name = "mixed"
        self.occasional_world = SynthWorld(users=users, months=months, start=start,
                                           seed=seed + OCCASIONAL_SEED_OFFSET, chunk_users=chunk_users,
                                           refund_rate=0.0, profile="occasional")

    def latent(self, chunk: int) -> MixedLatent:  # type: ignore[override]
        """Draw both sub-worlds' latents and the habitual flag (the same for every replicate)."""
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(2, chunk)))
        habitual = rng.random(self.chunk_size(chunk)) < self.habit_share
        return MixedLatent(habitual, super().latent(chunk), self.occasional_world.latent(chunk))

    def purchases(self, chunk: int, latent: MixedLatent, *, replicate: int = 0,  # type: ignore[override]
                  future: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw (chunk-local user index, ts in µs UTC, amount): each user's rows from its own sub-world."""
        hu, hts, ham = super().purchases(chunk, latent.habit, replicate=replicate, future=future)
        ou, ots, oam = self.occasional_world.purchases(chunk, latent.occasional, replicate=replicate, future=future)
        keep_h, keep_o = latent.habitual[hu], ~latent.habitual[ou]
        u = np.concatenate([hu[keep_h], ou[keep_o]])
        ts = np.concatenate([hts[keep_h], ots[keep_o]])
        amount = np.concatenate([ham[keep_h], oam[keep_o]])
        order = np.lexsort((ts, u))
        return u[order], ts[order], amount[order]

    def oracle(self, latent: MixedLatent, freq: str = "month") -> tuple[list, np.ndarray]:  # type: ignore[override]
        """Compute (period starts, expected gross spend): each user's row from its own sub-world's oracle."""
        starts, habit = super().oracle(latent.habit, freq)
        starts_o, occasional = self.occasional_world.oracle(latent.occasional, freq)
        assert starts == starts_o  # the same calendar
        return starts, np.where(latent.habitual[:, None], habit, occasional)
