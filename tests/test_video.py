"""Videos of a policy (a3c_jax.analysis.video): one frame per action taken, written as GIF and MP4 and
read back, for the classic-control and MinAtar environments; evaluate --video."""

from __future__ import annotations

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from a3c_jax.analysis import policy as saved, video
from a3c_jax.shell import files as runlog
from a3c_jax.commands import evaluate
from a3c_jax.config.schema import Config


def fresh(env: str, **kw) -> saved.SavedPolicy:
    return saved.make_policy(Config(env=env, **kw), key=jax.random.key(3))


@pytest.fixture(scope="module")
def cartpole():
    return video.record_episode(fresh("CartPole-v1"), jax.random.key(0))


def test_cartpole_episode_one_frame_per_action(cartpole):
    ep = cartpole
    assert ep.finished and 0 < ep.length < 500
    # CartPole pays 1 per step: the return is the number of actions, each with its frame
    assert ep.frames.shape == (ep.length, video.HEIGHT, video.WIDTH, 3)
    assert ep.frames.dtype == np.uint8 and ep.episode_return == ep.length
    assert not np.array_equal(ep.frames[0], ep.frames[-1])   # the pole moved


def test_contact_sheet_spreads_frames_over_the_episode(cartpole):
    sheet = video.contact_sheet(cartpole.frames, n=3, gap=4)
    w = video.WIDTH
    assert sheet.shape == (video.HEIGHT, 3 * w + 8, 3)
    assert np.array_equal(sheet[:, :w], cartpole.frames[0])
    assert np.array_equal(sheet[:, -w:], cartpole.frames[-1])
    assert (sheet[:, w:w + 4] == 160).all()


def test_max_steps_cuts_the_episode():
    ep = video.record_episode(fresh("CartPole-v1"), jax.random.key(0), max_steps=4)
    assert (ep.length, ep.finished, ep.frames.shape[0]) == (4, False, 4)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")   # reading MP4 runs ffmpeg
def test_gif_and_mp4_hold_every_frame(cartpole, tmp_path):
    gif = video.write_video(tmp_path / "ep.gif", cartpole.frames, fps=25)
    mp4 = video.write_video(tmp_path / "sub" / "ep.mp4", cartpole.frames, fps=25)
    assert iio.imread(gif, index=None).shape[0] == cartpole.length
    frames = iio.imread(mp4, index=None)
    assert frames.shape == (cartpole.length, video.HEIGHT, video.WIDTH, 3)
    # lossy, but the same picture: mean absolute error of a few grey levels
    assert np.abs(frames.astype(int) - cartpole.frames.astype(int)).mean() < 8
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ep.gif", "ep.mp4", "sub"]
    with pytest.raises(ValueError, match="must end in .gif or .mp4"):
        video.write_video(tmp_path / "ep.avi", cartpole.frames)


@pytest.mark.parametrize("env, shape", [("Pendulum-v1", (video.HEIGHT, video.WIDTH, 3)),
                                        ("Breakout-MinAtar", (320, 320, 3))])
def test_pendulum_and_minatar(env, shape):
    ep = video.record_episode(fresh(env), jax.random.key(1), max_steps=60)
    assert ep.frames.shape == (ep.length,) + shape
    assert len({f.tobytes() for f in ep.frames}) == ep.length       # every frame distinct
    if env == "Breakout-MinAtar":   # the paddle's channel is drawn in the bottom row
        assert ep.frames[0, -video.CELL:].reshape(-1, 3).max(0).tolist() != [0, 0, 0]


def test_mp4_without_its_writer_is_refused_before_anything_is_played(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(ValueError, match=r"\.mp4 needs imageio-ffmpeg.*video"):
        video.save_episode_video(tmp_path / "no-run", 0, tmp_path / "ep.mp4")
    assert video.check_path(tmp_path / "ep.gif").suffix == ".gif"


def test_renderable_environments():
    for env in ("CartPole-v1", "CartPole-masked-v1", "Pendulum-v1", "Acrobot-v1",
                "MountainCar-v0", "MountainCarContinuous-v0", "Asterix-MinAtar"):
        assert callable(video.renderer(env))
    with pytest.raises(ValueError, match="no renderer for Catch-bsuite"):
        video.renderer("Catch-bsuite")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory with untrained parameters: what evaluate reads."""
    out = tmp_path_factory.mktemp("run")
    pol = fresh("CartPole-v1")
    runlog.write_config(out, pol.config.replace(seeds=(0,), out=str(out)))
    runlog.save_params(out, 0, pol.params)
    return out


def test_evaluate_video(run_dir, tmp_path, capsys):
    target = tmp_path / "episode.gif"
    assert evaluate.main([str(run_dir), "--episodes", "2", "--video", str(target)]) == 0
    out = capsys.readouterr().out
    frames = iio.imread(target, index=None)
    assert f"video: {target} ({frames.shape[0]} frames of seed 0, return " in out
    # the greedy episode of seed 0 from the evaluation key, as the library records it
    again = video.record_episode(saved.load_policy(run_dir, 0), saved.eval_key(12345, 0))
    assert frames.shape[0] == again.length and again.finished
    assert evaluate.main([str(run_dir), "--video", str(tmp_path / "x.avi")]) == 2
    assert "--video: " in capsys.readouterr().err and not (tmp_path / "x.avi").exists()
