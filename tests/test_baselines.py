"""The methods of `satecco upscale --method` (TFA switched off, frame-wise SATeCo, the upscaler alone,
MATLAB bicubic) and the ablation switches that need no retraining (--no-sfa, --no-tfa, --refiner-w)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import perturb_
from media import moving_frames, write

from satecco.baselines import BicubicUpscaler, FramewisePipeline, UpscalerPipeline
from satecco.build import build_pipeline, method_pipeline
from satecco.cli import main
from satecco.layout import frames_to_model, model_to_frames
from satecco.metrics.imresize import imresize
from satecco.models.adapters import DecoderAdapters
from satecco.pipeline import SATeCoPipeline, run_steps, window_noise
from satecco.presets import ModelSpec
from satecco.video.read import read_frames


def test_without_tfa_no_frame_reaches_another_through_the_adapters():
    torch.manual_seed(0)
    adapters = perturb_(DecoderAdapters(block_channels=(8,), guidance_channels=(8,), head_dim=8,
                                        tfa_kernel_size=(1, 1, 1)), std=0.2)
    frames = 4
    f, g = torch.randn(frames, 8, 16, 16), torch.randn(frames, 8, 16, 16)
    f2 = f.clone()
    f2[2] += torch.randn(8, 16, 16)  # change frame 2 only

    def others_change() -> float:
        return (adapters.adapt(0, f2, g, frames) - adapters.adapt(0, f, g, frames))[[0, 1, 3]].abs().max().item()

    assert others_change() > 1e-3, "with TFA on, a change in frame 2 reaches the other frames"
    with adapters.without_tfa():
        assert others_change() == 0.0
        alone = adapters.adapt(0, f[1:2], g[1:2], 1)
        torch.testing.assert_close(adapters.adapt(0, f, g, frames)[1:2], alone)  # SFA only, per frame
    assert adapters.tfa_enabled and others_change() > 1e-3, "the switch is restored on exit"


@pytest.fixture(scope="module")
def active_pipeline(tiny_parts):
    """The tiny model with every module perturbed, so that TFA and the upscaler's TMSA do mix frames."""
    import copy

    model, diffusion = tiny_parts
    model = copy.deepcopy(model)
    for name in model.trainable_modules():
        perturb_(getattr(model, name), std=0.02, seed=3)
    return SATeCoPipeline(model, diffusion)


def test_framewise_output_of_a_frame_depends_on_that_frame_only(active_pipeline):
    clip = np.stack(moving_frames(n=3, height=16, width=16))
    changed = clip.copy()
    changed[2] = 255 - changed[2]
    framewise = FramewisePipeline(active_pipeline)
    out, out_changed = framewise.upscale_window(clip, 0, seed=5), framewise.upscale_window(changed, 0, seed=5)
    np.testing.assert_array_equal(out[:2], out_changed[:2])
    assert np.abs(out[2] - out_changed[2]).mean() > 1.0
    # frame 1 of the window is frame 1 of the video: the same as a one-frame window at that index
    np.testing.assert_allclose(framewise.upscale_window(clip[1:2], 1, seed=5)[0], out[1], atol=1e-4)
    # the control: SATeCo itself carries the change across the window
    satecco = active_pipeline.upscale_window(clip, 0, seed=5)
    assert np.abs(active_pipeline.upscale_window(changed, 0, seed=5)[0] - satecco[0]).max() > 0.5


def test_framewise_parts_split_and_join_like_the_whole(active_pipeline):
    """The Ray engine may run encode, denoise and decode in different actors: the same frames result."""
    clip = np.stack(moving_frames(n=2, height=16, width=16))
    framewise = FramewisePipeline(active_pipeline)
    latents = framewise.run_window(clip, 4, 1, ("encode",))
    denoised = framewise.run_window(clip, 4, 1, ("denoise",), latents)
    assert denoised["denoised"].shape[:2] == (1, 2)  # (tiles, frames, ...)
    split = framewise.run_window(clip, 4, 1, ("decode",), denoised)["frames"]
    np.testing.assert_allclose(split, framewise.upscale_window(clip, 4, 1), atol=1e-3)


def test_bicubic_is_matlab_imresize_x4():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (2, 9, 13, 3), dtype=np.uint8)
    out = BicubicUpscaler().upscale_window(clip, 0, seed=0)
    assert out.shape == (2, 36, 52, 3) and out.dtype == np.float32
    for frame, up in zip(clip, out, strict=True):
        np.testing.assert_array_equal(up, imresize(frame, 4.0))
    flat = np.full((1, 8, 8, 3), 77, np.uint8)
    np.testing.assert_array_equal(BicubicUpscaler().upscale_window(flat, 0, 0), 77)  # weights sum to one
    assert BicubicUpscaler().run_window(clip, 0, 0, ("encode",))["latents"].shape == (1, 2, 0)


def test_unknown_method_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="'nearest'"):
        ModelSpec(method="nearest")


@pytest.mark.parametrize("method", ["bicubic", "framewise", "upscaler"])
def test_cli_upscale_method(method, tmp_path):
    frames = moving_frames(n=3, height=16, width=16)
    source = write(tmp_path / "clip.mkv", frames, "ffv1")
    out = tmp_path / "out"
    code = main(["upscale", "--engine", "local", "--method", method, "--codec", "ffv1", "--steps", "1",
                 str(source), "-o", str(out), "--no-progress"])
    assert code == 0
    result = np.stack(list(read_frames(out / "clip.mkv")))
    assert result.shape == (3, 64, 64, 3)
    if method == "bicubic":
        np.testing.assert_array_equal(result, np.stack([imresize(f, 4.0) for f in frames]))

    if method == "upscaler":  # the embedded default's X_u, on the same window as SATeCo's
        pipeline = build_pipeline(ModelSpec())
        with torch.inference_mode():
            upscaled = pipeline.model.upscaler(frames_to_model(np.stack(frames)))
        np.testing.assert_allclose(result, model_to_frames(upscaled), atol=1)


def _switched(pipeline: SATeCoPipeline, **switches):
    """A copy of ``pipeline`` (its model deep-copied) as ``satecco upscale`` runs it with ``switches``."""
    import copy

    copied = SATeCoPipeline(copy.deepcopy(pipeline.model), pipeline.diffusion)
    return method_pipeline(copied, ModelSpec(random_weights=True, **switches))


def _denoised_and_frames(pipeline, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    denoised = pipeline.run_window(clip, 0, 5, ("encode", "denoise"))
    return denoised["denoised"], pipeline.run_window(clip, 0, 5, ("decode",), denoised)["frames"]


@pytest.mark.parametrize("switches, moves_latents", [
    (dict(no_sfa=("unet",)), True), (dict(no_tfa=("unet",)), True), (dict(no_sfa=("vae",)), False),
    (dict(no_tfa=("vae",)), False), (dict(refiner_w=0.0), False), (dict(refiner_w=1.0), False)],
    ids=["no-sfa-unet", "no-tfa-unet", "no-sfa-vae", "no-tfa-vae", "refiner-w-0", "refiner-w-1"])
def test_each_ablation_switch_changes_the_output_where_it_acts(active_pipeline, switches, moves_latents):
    """UNet switches change the denoised latents Z_0; VAE decoder switches and the refiner's w leave Z_0
    and change the frames; nothing else of the model is switched."""
    clip = np.stack(moving_frames(n=3, height=16, width=16))
    latents, frames = _denoised_and_frames(active_pipeline, clip)
    switched = _switched(active_pipeline, **switches)
    switched_latents, switched_frames = _denoised_and_frames(switched, clip)
    assert (np.abs(switched_latents - latents).max() > 1e-3) == moves_latents
    assert np.abs(switched_frames - frames).mean() > 0.2  # of 255
    model = switched.model
    flags = {f"{name}_{kind}": getattr(getattr(model, f"{name}_adapters"), f"{kind}_enabled")
             for name in ("unet", "vae") for kind in ("sfa", "tfa")}
    off = {f"{name}_{kind}" for kind in ("sfa", "tfa") for name in switches.get(f"no_{kind}", ())}
    assert {key for key, on in flags.items() if not on} == off
    assert model.refiner.config.weight == switches.get("refiner_w", 0.5)
    assert active_pipeline.model.unet_adapters.sfa_enabled and active_pipeline.model.refiner.config.weight == 0.5


def test_refiner_w_blends_x_u_and_x_d_as_eq_5_says(active_pipeline):
    """With the ResBlock's correction at zero, w = 1 gives X_u (the upscaler method's output) and w = 0
    gives X_d; the same switches compose with the frame-wise method."""
    clip = np.stack(moving_frames(n=2, height=16, width=16))
    active_pipeline = _switched(active_pipeline)
    torch.nn.init.zeros_(active_pipeline.model.refiner.conv_out.weight)
    torch.nn.init.zeros_(active_pipeline.model.refiner.conv_out.bias)
    upscaler = _switched(active_pipeline, method="upscaler")
    assert isinstance(upscaler, UpscalerPipeline)
    x_u = upscaler.upscale_window(clip, 0, seed=5)
    np.testing.assert_allclose(_switched(active_pipeline, refiner_w=1.0).upscale_window(clip, 0, seed=5), x_u,
                               atol=1e-3)
    with torch.inference_mode():
        x_d = run_steps(active_pipeline.model, active_pipeline.diffusion, frames_to_model(clip),
                        window_noise(5, 0, 2, (8, 16, 16)))[1].clamp(-1, 1)  # the tiny latents of 64x64
    np.testing.assert_allclose(_switched(active_pipeline, refiner_w=0.0).upscale_window(clip, 0, seed=5),
                               model_to_frames(x_d).astype(np.float32), atol=1)
    framewise = _switched(active_pipeline, method="framewise", refiner_w=1.0)
    np.testing.assert_allclose(framewise.upscale_window(clip, 0, seed=5)[0],
                               upscaler.upscale_window(clip[:1], 0, seed=5)[0], atol=1e-3)
    assert upscaler.run_window(clip, 0, 5, ("encode",))["latents"].shape == (1, 2, 0)


def test_ablation_switches_are_checked_and_enter_the_fingerprint(tmp_path, capsys):
    from satecco.fingerprint import fingerprint
    from satecco.inputs import VideoSettings

    with pytest.raises(ValueError, match=r"--no-tfa \['unet', 'decoder'\]: choose among \['unet', 'vae'\]"):
        ModelSpec(no_tfa=("unet", "decoder"))
    with pytest.raises(ValueError, match="--no-sfa and --refiner-w act on SATeCo's diffusion branch "
                                         "and refiner, which --method upscaler does not run"):
        ModelSpec(method="upscaler", no_sfa=("vae",), refiner_w=0.2)
    settings = VideoSettings()
    specs = [ModelSpec(), ModelSpec(method="upscaler"), ModelSpec(no_sfa=("unet",)), ModelSpec(no_sfa=("vae",)),
             ModelSpec(no_tfa=("unet",)), ModelSpec(no_tfa=("vae",)), ModelSpec(refiner_w=0.0)]
    assert len({fingerprint(spec, settings) for spec in specs}) == len(specs)
    out = tmp_path / "out"
    assert main(["upscale", "in.mp4", "-o", str(out), "--refiner-w", "1.5"]) == 2
    assert "--refiner-w: Input should be less than or equal to 1 (got '1.5')" in capsys.readouterr().err
    assert main(["upscale", "in.mp4", "-o", str(out), "--no-tfa", "unet", "--method", "bicubic"]) == 2
    assert "--no-tfa act on SATeCo's diffusion branch" in capsys.readouterr().err
    assert not out.exists()


def test_the_switches_reach_the_pipeline_every_stage_actor_builds():
    """The Ray engine hands its ModelSpec to each StageActor, which builds the pipeline with the switches
    (tests/test_ray_pipeline.py compares the whole run with the local engine's)."""
    from satecco.pipelines.stages import StageActor
    from satecco.segments import PARTS

    spec = ModelSpec(steps=1, no_sfa=("unet",), no_tfa=("unet", "vae"), refiner_w=0.25)
    model = StageActor(spec, PARTS, "all", seed=0, overlap=0).pipeline.model
    assert not model.unet_adapters.sfa_enabled and model.vae_adapters.sfa_enabled
    assert not model.unet_adapters.tfa_enabled and not model.vae_adapters.tfa_enabled
    assert model.refiner.config.weight == 0.25
    assert isinstance(StageActor(ModelSpec(method="upscaler"), PARTS, "all", 0, 0).pipeline, UpscalerPipeline)
