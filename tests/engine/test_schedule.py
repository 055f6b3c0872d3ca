"""The stream batch's schedule math, row by row against diffusers' LCMScheduler.step."""

import pytest
import torch

from l2d_obs.engine.denoiser import LCMSchedule
from l2d_obs.engine.tiny import sd15_scheduler

T_INDEX_LISTS = [(35,), (30, 45), (20, 28, 36, 45)]


def _schedule(t_index_list) -> LCMSchedule:
    return LCMSchedule.from_scheduler(sd15_scheduler(), t_index_list, 50)


def _diffusers_over(schedule: LCMSchedule):
    """diffusers' LCMScheduler stepping exactly this schedule's timesteps (custom timesteps)."""
    scheduler = sd15_scheduler()
    scheduler.set_timesteps(timesteps=[int(t) for t in schedule.timesteps])
    return scheduler


@pytest.mark.parametrize("t_index_list", T_INDEX_LISTS)
def test_step_equals_lcm_scheduler_step_row_by_row(t_index_list):
    schedule = _schedule(t_index_list)
    steps = schedule.num_steps
    rows = tuple(reversed(range(steps)))  # a stream batch: each row at another step, in any order
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(steps, 4, 8, 8, generator=gen)
    eps = torch.randn(steps, 4, 8, 8, generator=gen)
    noise_seeds = [100 + r for r in range(steps)]
    # Each row's next-step noise as diffusers draws it (randn from a seeded generator).
    next_noise = torch.cat([torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(s)) for s in noise_seeds])
    ours = schedule.step(z, eps, rows, next_noise)
    for i, s in enumerate(rows):
        scheduler = _diffusers_over(schedule)
        out = scheduler.step(eps[i : i + 1], int(schedule.timesteps[s]), z[i : i + 1],
                             generator=torch.Generator().manual_seed(noise_seeds[i]))
        torch.testing.assert_close(ours.denoised[i : i + 1], out.denoised, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.prev_sample[i : i + 1], out.prev_sample, rtol=1e-5, atol=1e-5)
        assert ours.finished[i] == (s == steps - 1)
    # the last step's row is denoised exactly (no noise added)
    last = rows.index(steps - 1)
    assert torch.equal(ours.prev_sample[last], ours.denoised[last])


@pytest.mark.parametrize("t_index_list", T_INDEX_LISTS)
def test_add_noise_equals_lcm_scheduler_add_noise(t_index_list):
    schedule = _schedule(t_index_list)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(schedule.num_steps, 4, 8, 8, generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    rows = tuple(range(schedule.num_steps))
    expected = sd15_scheduler().add_noise(x0, noise, schedule.timesteps[list(rows)])
    torch.testing.assert_close(schedule.add_noise(x0, noise, rows), expected, rtol=1e-5, atol=1e-5)
    # one int: every row at that step
    torch.testing.assert_close(schedule.add_noise(x0[:1], noise[:1], 0), expected[:1], rtol=1e-5, atol=1e-5)


def test_steps_are_checked_and_device_steps_refused():
    schedule = _schedule((30, 45))
    z = torch.zeros(2, 4, 2, 2)
    with pytest.raises(ValueError, match="outside"):
        schedule.step(z, z, (0, 2), z)
    with pytest.raises(ValueError, match="3 steps for 2 rows"):
        schedule.add_noise(z, z, (0, 1, 1))
    with pytest.raises(ValueError, match="device tensor"):
        schedule.add_noise(z.to("meta"), z.to("meta"), torch.zeros(2, dtype=torch.long, device="meta"))
