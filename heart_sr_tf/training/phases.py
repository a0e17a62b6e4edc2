"""The WGAN's five training phases (the paper's section 4, after Chen et al. 2018), as a pure function.

Every training step is one update of the generator, the critic, or both:

1. the generator alone, for ``n1`` steps;
2. both together, for ``n2`` steps;
3. the critic alone, for ``n3`` steps;
4. imbalanced, for ``n4`` steps: cycles of ``k`` critic-only steps, then one generator-only step;
5. both together to the end, with a burst of ``b`` critic-only steps after every ``p`` joint steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from heart_sr_tf.config import PhaseConfig

__all__ = ["Action", "PhaseConfig", "action_at"]


@dataclass(frozen=True)
class Action:
    phase: int  # 1..5
    generator: bool  # the generator is updated at this step
    critic: bool  # the critic is updated at this step

    @property
    def mode(self) -> str:
        return "both" if self.generator and self.critic else "generator" if self.generator else "critic"


def action_at(step: int, s: PhaseConfig) -> Action:
    """What trains at 0-based ``step``."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < s.n1:
        return Action(1, True, False)
    step -= s.n1
    if step < s.n2:
        return Action(2, True, True)
    step -= s.n2
    if step < s.n3:
        return Action(3, False, True)
    step -= s.n3
    if step < s.n4:
        critic = step % (s.k + 1) < s.k
        return Action(4, not critic, critic)
    step -= s.n4
    burst = s.b > 0 and step % (s.p + s.b) >= s.p
    return Action(5, not burst, True)
