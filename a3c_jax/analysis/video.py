"""Watch a policy: record one episode of a saved policy as frames, write a GIF or an MP4.

``record_episode(policy, key)`` plays one episode (greedy by default) with one jitted
``lax.scan`` and draws one RGB frame per action taken, of the state the action was taken in;
so an episode of length L gives L frames. ``write_video(path, frames, fps)`` writes them with
imageio: ``.gif`` through Pillow, ``.mp4`` through imageio-ffmpeg (the ``video`` extra).
A GIF stores identical consecutive frames once, for their summed duration (Pillow), so the
caption (step and return so far) is on by default: it makes every frame distinct.
``save_episode_video(run_dir, seed, path)`` does both for a run directory; ``contact_sheet``
puts a few frames side by side (a still for a README or a notebook);
``a3c-evaluate RUN --video out.gif`` is the same from the command line.

Frames are drawn here with Pillow from the environment's state (gymnax's own visualiser needs
gymnasium and pygame, and draws through matplotlib one figure per frame): CartPole (and its
masked variant), Pendulum, Acrobot, MountainCar (both), every MinAtar game (the
observation's channels as coloured cells) and every Atari game (the newest 84x84 grey frame
the agent saw, enlarged 4x).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from a3c_jax.analysis import policy as saved
from a3c_jax.core.envs import make_env

WIDTH, HEIGHT = 480, 320          # multiples of 16: MP4 encoders need no resizing
CELL = 32                         # MinAtar: pixels per grid cell (10 x 10 -> 320 x 320)
PALETTE = [(255, 255, 255), (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66),
           (0, 114, 178), (213, 94, 0), (204, 121, 167), (153, 153, 153), (120, 200, 80)]


@dataclasses.dataclass(frozen=True)
class Episode:
    frames: np.ndarray        # [L, H, W, 3] uint8, one per action taken
    rewards: np.ndarray       # [L]
    episode_return: float
    length: int
    finished: bool            # False when max_steps cut the episode


def _canvas(size=(WIDTH, HEIGHT), colour=(255, 255, 255)):
    image = Image.new("RGB", size, colour)
    return image, ImageDraw.Draw(image)


def _cartpole(state, obs, x_threshold: float = 2.4) -> Image.Image:
    image, draw = _canvas()
    scale = WIDTH / (2 * x_threshold * 1.2)
    ground = HEIGHT * 0.7
    cx = WIDTH / 2 + float(state.x) * scale
    draw.line([(0, ground), (WIDTH, ground)], fill=(0, 0, 0), width=2)
    draw.rectangle([cx - 30, ground - 15, cx + 30, ground + 15], fill=(40, 40, 40))
    theta, length = float(state.theta), 2 * 0.5 * scale
    tip = (cx + length * math.sin(theta), ground - length * math.cos(theta))
    draw.line([(cx, ground), tip], fill=(202, 152, 101), width=10)
    draw.ellipse([cx - 5, ground - 5, cx + 5, ground + 5], fill=(129, 132, 203))
    return image


def _pendulum(state, obs) -> Image.Image:
    image, draw = _canvas()
    c, r = (WIDTH / 2, HEIGHT / 2), HEIGHT * 0.38
    theta = float(state.theta)   # 0 = upright
    tip = (c[0] + r * math.sin(theta), c[1] - r * math.cos(theta))
    draw.line([c, tip], fill=(204, 77, 77), width=14)
    draw.ellipse([c[0] - 7, c[1] - 7, c[0] + 7, c[1] + 7], fill=(0, 0, 0))
    torque = float(state.last_u)
    x0, x1 = sorted((c[0], c[0] + torque * 40))
    draw.rectangle([x0, HEIGHT - 20, x1, HEIGHT - 10], fill=(86, 180, 233))
    return image


def _acrobot(state, obs) -> Image.Image:
    image, draw = _canvas()
    c, link = (WIDTH / 2, HEIGHT / 2), HEIGHT * 0.22
    a1, a2 = float(state.joint_angle1), float(state.joint_angle2)
    p1 = (c[0] + link * math.sin(a1), c[1] + link * math.cos(a1))
    p2 = (p1[0] + link * math.sin(a1 + a2), p1[1] + link * math.cos(a1 + a2))
    draw.line([(0, c[1] - link), (WIDTH, c[1] - link)], fill=(0, 0, 0), width=1)
    draw.line([c, p1, p2], fill=(0, 114, 178), width=10, joint="curve")
    draw.ellipse([c[0] - 6, c[1] - 6, c[0] + 6, c[1] + 6], fill=(230, 159, 0))
    return image


def _mountain_car(state, obs, lo: float = -1.2, hi: float = 0.6) -> Image.Image:
    image, draw = _canvas()

    def point(x):
        return ((x - lo) / (hi - lo) * WIDTH, HEIGHT * 0.85 - (math.sin(3 * x) + 1) * HEIGHT
                * 0.35)

    draw.line([point(x) for x in np.linspace(lo, hi, 100)], fill=(0, 0, 0), width=2)
    gx, gy = point(0.5)
    draw.line([(gx, gy), (gx, gy - 40)], fill=(0, 0, 0), width=2)
    draw.polygon([(gx, gy - 40), (gx + 20, gy - 33), (gx, gy - 26)], fill=(240, 228, 66))
    x, y = point(float(state.position))
    draw.ellipse([x - 12, y - 24, x + 12, y], fill=(213, 94, 0))
    return image


def _minatar(state, obs) -> Image.Image:
    grid = np.asarray(obs)                                  # [10, 10, C] in {0, 1}
    channel = np.where(grid.any(-1), grid.shape[-1] - np.argmax(grid[..., ::-1], -1), 0)
    colours = np.array([(0, 0, 0)] + [PALETTE[i % len(PALETTE)] for i in
                                      range(grid.shape[-1])], np.uint8)
    cells = colours[channel]                                # [10, 10, 3]
    return Image.fromarray(np.kron(cells, np.ones((CELL, CELL, 1), np.uint8)))


def _atari(state, obs) -> Image.Image:
    grey = np.asarray(obs, np.uint8)[..., -1]               # [84, 84] newest frame
    return Image.fromarray(np.kron(grey, np.ones((4, 4), np.uint8))).convert("RGB")


def renderer(env_name: str):
    """The frame function of ``env_name``; ValueError if there is none."""
    if env_name.endswith("-MinAtar"):
        return _minatar
    if env_name.startswith("ALE/"):
        return _atari
    known = {"CartPole-v1": _cartpole, "CartPole-masked-v1": _cartpole,
             "Pendulum-v1": _pendulum, "Acrobot-v1": _acrobot,
             "MountainCar-v0": _mountain_car, "MountainCarContinuous-v0": _mountain_car}
    if env_name not in known:
        raise ValueError(f"no renderer for {env_name} (renderable: "
                         f"{', '.join(sorted(known))}, the MinAtar and the Atari games)")
    return known[env_name]


def _caption(image: Image.Image, text: str) -> np.ndarray:
    ImageDraw.Draw(image).text((6, 4), text, fill=(128, 128, 128))
    return np.asarray(image, np.uint8)


@functools.lru_cache(maxsize=8)
def _compiled_episode(config, greedy: bool, num_steps: int):
    """``play(params, key) -> (inner states, obs, rewards, done)``, each [num_steps, ...]."""
    env = make_env(config.env, 1, config)
    policy = saved.make_policy(config)     # its act / state functions; params come as input

    def play(params, key):
        k_reset, k_run = jax.random.split(key)

        def step(carry, k):
            env_state, state = carry
            k_act, k_env = jax.random.split(k)
            state, action = policy.act(params, state, env_state.obs, k_act, greedy)
            new_env_state, out = env.step(k_env, env_state, action)
            done = jnp.logical_or(out.terminated, out.truncated)
            shown = (env_state.inner, env_state.obs)
            return (new_env_state, policy.reset_state(state, done)), (shown, out.reward, done)

        init = (env.reset(k_reset), policy.initial_state(1))
        _, ((inner, obs), reward, done) = jax.lax.scan(step, init,
                                                       jax.random.split(k_run, num_steps))
        return inner, obs, reward, done

    return jax.jit(play)


def record_episode(policy: saved.SavedPolicy, key: jax.Array, greedy: bool = True,
                   max_steps: int = 0, caption: bool = True) -> Episode:
    """One episode of ``policy`` as frames (one per action taken); see the module docstring.
    ``max_steps`` 0 plays up to the environment's own episode limit."""
    draw = renderer(policy.env_name)
    num_steps = saved.eval_steps(policy, max_steps)
    inner, obs, reward, done = jax.device_get(
        _compiled_episode(policy.config, bool(greedy), num_steps)(policy.params, key))
    done = np.asarray(done)[:, 0]
    finished = bool(done.any())
    length = int(np.argmax(done)) + 1 if finished else num_steps
    rewards = np.asarray(reward, np.float64)[:length, 0]
    totals = np.cumsum(rewards)
    frames = []
    for t in range(length):
        state = jax.tree.map(lambda x: x[t, 0], inner)
        image = draw(state, np.asarray(obs)[t, 0])
        frames.append(_caption(image, f"{policy.env_name}  step {t + 1}  return "
                                      f"{totals[t] - rewards[t]:.4g}") if caption
                      else np.asarray(image, np.uint8))
    return Episode(frames=np.stack(frames), rewards=rewards,
                   episode_return=float(rewards.sum()), length=length, finished=finished)


def contact_sheet(frames: np.ndarray, n: int = 5, gap: int = 4) -> np.ndarray:
    """``n`` frames spread evenly over an episode, side by side (a still of a video)."""
    picks = frames[np.unique(np.linspace(0, len(frames) - 1, n).round().astype(int))]
    h, w = picks.shape[1:3]
    sheet = np.full((h, len(picks) * (w + gap) - gap, 3), 160, np.uint8)   # grey between
    for i, frame in enumerate(picks):
        sheet[:, i * (w + gap):i * (w + gap) + w] = frame
    return sheet


def check_path(path: str | Path) -> Path:
    """``path`` if a video can be written there (``.gif``, or ``.mp4`` with imageio-ffmpeg
    installed); ValueError saying why not."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"{path} must end in .gif or .mp4")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ValueError("writing .mp4 needs imageio-ffmpeg (pip install "
                             "'a3c_jax[video]'), or write a .gif") from None
    return path


def write_video(path: str | Path, frames: np.ndarray, fps: int = 30) -> Path:
    """Write ``frames`` [L, H, W, 3] uint8 to ``path``: ``.gif`` (Pillow) or ``.mp4``
    (imageio-ffmpeg, the ``video`` extra); ValueError for another suffix or a missing writer
    (``check_path``).
    Written to a temporary name and renamed, like every file of a run directory."""
    import imageio.v2 as imageio

    path = check_path(path)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.stem}.partial{suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if suffix == ".gif":
            imageio.mimwrite(tmp, list(frames), format="GIF", duration=1000.0 / fps, loop=0)
        else:
            with warnings.catch_warnings():   # ffmpeg is a subprocess: fork + exec at once
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                imageio.mimwrite(tmp, list(frames), fps=fps, macro_block_size=16)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_episode_video(run_dir: str | Path, seed: int, path: str | Path, key=None,
                       greedy: bool = True, max_steps: int = 0, fps: int = 30) -> Episode:
    """Record one episode of ``run_dir``'s saved policy for ``seed`` and write it."""
    check_path(path)                           # fail before playing anything
    policy = saved.load_policy(run_dir, seed)
    renderer(policy.env_name)
    episode = record_episode(policy, jax.random.key(0) if key is None else key, greedy,
                             max_steps)
    write_video(path, episode.frames, fps)
    return episode
