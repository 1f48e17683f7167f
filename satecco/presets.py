"""Presets: the frozen base architecture plus the hyper-parameters of SATeCo's own modules.

- ``tiny``: small widths that run on a CPU in seconds (tests, the embedded default);
- ``sd21``: the Stable Diffusion 2.1-base UNet and VAE; with random weights it has the real FLOPs.

With ``--base-model DIR`` the UNet and VAE come from the folder and only SATeCo's modules use the
preset; their widths follow the loaded networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

#: ``beta_schedule`` values (diffusers' names) and ``prediction_type`` values the samplers take.
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclass(frozen=True)
class DiffusionConfig:
    """Noise schedule and sampler.

    The paper's (§4.1) "linear schedule, β₁ = 0.00085, β_T = 0.012, T = 1000" is latent diffusion's name
    for ``β_t = linspace(√β₁, √β_T, T)²``: diffusers' ``scaled_linear``, which Stable Diffusion was
    trained with (diffusers' ``linear`` is another schedule). The fields from ``num_train_timesteps`` to
    ``rescale_betas_zero_snr`` carry the names of diffusers' ``scheduler_config.json``: with a base model,
    those its ``scheduler/`` states replace these (:func:`satecco.schedule.base_schedule`). The sampler
    takes those its class accepts (``clip_sample`` and ``set_alpha_to_one`` are DDIM's, ``thresholding``
    DDIM's and DPM-Solver's).

    ``start_step`` is the training timestep up to which noise is added to ``Z``; sampling runs the
    sampler's timesteps at or below it.
    """

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    trained_betas: tuple[float, ...] | None = None
    prediction_type: str = "epsilon"
    rescale_betas_zero_snr: bool = False
    timestep_spacing: str = "trailing"
    steps_offset: int = 0
    set_alpha_to_one: bool = True
    clip_sample: bool = False
    clip_sample_range: float = 1.0
    thresholding: bool = False
    dynamic_thresholding_ratio: float = 0.995
    sample_max_value: float = 1.0
    sampler: str = "ddim"
    steps: int = 50
    start_step: int = 999


#: The :class:`DiffusionConfig` fields a base model's ``scheduler/scheduler_config.json`` decides.
SCHEDULE_FIELDS = tuple(f.name for f in fields(DiffusionConfig) if f.name not in ("sampler", "steps", "start_step"))


#: The factor every preset's model upscales by (the paper's x4); outputs of other sizes are scaled after it.
MODEL_SCALE = 4


@dataclass(frozen=True)
class Preset:
    """Everything needed to build a SATeCo model without a checkpoint folder."""

    name: str
    unet: dict
    vae: dict
    upscaler: dict
    latent_encoder_levels: tuple[int, ...]
    unet_adapters: dict
    vae_adapters: dict
    refiner: dict
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    prompt: str = ""
    scale: int = MODEL_SCALE
    frames: int = 6

    def with_diffusion(self, **changes) -> Preset:
        """A copy with some :class:`DiffusionConfig` fields replaced (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, diffusion=replace(self.diffusion, **changes))


TINY = Preset(
    name="tiny",
    # Sized to run on 2 CPU cores no slower per frame than the first tiny design (docs/benchmarks.md), with
    # a VAE that reconstructs unseen footage well enough for X_d to matter: 4x downsampling and 8 latent
    # channels (an 8x, 4-channel VAE this small stayed near 17 dB on held-out frames), widths from 16 so
    # that GroupNorm's 8 groups keep 2 or more channels each. The UNet works on the 4x latents over three
    # levels and attends (self and to the prompt) only at the coarsest, as the old 8x design did.
    unet=dict(
        sample_size=32, in_channels=8, out_channels=8, layers_per_block=1, block_out_channels=(16, 32, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    ),
    vae=dict(
        in_channels=3, out_channels=3, latent_channels=8, layers_per_block=1,
        block_out_channels=(16, 32, 64), down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=8, sample_size=64, scaling_factor=1.0,
        mid_block_add_attention=False,
    ),
    upscaler=dict(channels=16, num_blocks=2, depth=2, head_dim=8, window_size=(2, 8, 8)),
    latent_encoder_levels=(16, 32, 64),
    unet_adapters=dict(window_size=8, head_dim=16, tfa_kernel_size=(3, 3, 3)),
    vae_adapters=dict(window_size=8, head_dim=16, tfa_kernel_size=(1, 1, 1)),
    refiner=dict(channels=16, weight=0.5),
    # The paper's schedule read right (scaled_linear; the tiny base is trained with it). One DDIM step from
    # t = 124 (trailing spacing of 8): at this size the UNet's denoising loses more of X_u's content than it
    # restores, the more the higher t starts (docs/training.md); stages 0 and 2 train it on t <= 499.
    diffusion=DiffusionConfig(beta_schedule="scaled_linear", steps=8, start_step=124),
)

# Stable Diffusion 2.1-base (stabilityai/stable-diffusion-2-1-base) UNet and VAE configurations.
SD21 = Preset(
    name="sd21",
    unet=dict(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
    ),
    vae=dict(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=768, scaling_factor=0.18215,
    ),
    upscaler=dict(channels=64, num_blocks=2, depth=2, head_dim=32, window_size=(2, 8, 8)),
    latent_encoder_levels=(320, 640, 1280),
    unet_adapters=dict(window_size=8, head_dim=64, tfa_kernel_size=(3, 3, 3)),
    # At full VAE resolution a 3x3x3 Conv3D costs about a decoder block (DESIGN.md): pointwise projections.
    vae_adapters=dict(window_size=8, head_dim=64, tfa_kernel_size=(1, 1, 1)),
    refiner=dict(channels=64, weight=0.5),
    diffusion=DiffusionConfig(beta_schedule="scaled_linear"),  # SD 2.1's own (and the paper's, read right)
    prompt="a high quality, high resolution, sharp and detailed video",
)

PRESETS = {p.name: p for p in (TINY, SD21)}

#: What ``satecco upscale --method`` runs: SATeCo, or a baseline of :mod:`satecco.baselines`.
METHODS = ("satecco", "upscaler", "framewise", "bicubic")
#: The methods whose every output frame depends on its own input frame only (windows need no overlap).
FRAME_BY_FRAME = ("framewise", "bicubic")
#: The methods that run no diffusion branch and no refiner (SFA/TFA and ``w`` switches do not apply).
NO_DIFFUSION = ("upscaler", "bicubic")
#: The frozen networks whose decoder SFA and TFA adapt (``--no-sfa``/``--no-tfa`` values).
ADAPTED = ("unet", "vae")
#: ``--color-fix`` values (:mod:`satecco.colorfix`).
COLOR_FIXES = ("none", "wavelet", "adain")
#: What SATeCo's methods apply unless told otherwise: on both unseen clips of docs/ablation.md the
#: wavelet fix raised PSNR (carphone +0.03 dB, bikes +3.1 dB) and lowered the warping error.
DEFAULT_COLOR_FIX = "wavelet"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ``ValueError`` listing the known ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


#: The embedded default: the tiny preset trained by ``scripts/train_tiny_default.sh`` (a diffusers folder
#: with ``unet/``, ``vae/``, ``scheduler/``, plus SATeCo's modules in ``satecco.safetensors``).
EMBEDDED_TINY = Path(__file__).parent / "weights" / "tiny"


@dataclass(frozen=True)
class ModelSpec:
    """How every actor builds the same model (paths must be readable on every node)."""

    preset: str = "tiny"
    base_model: str | None = None
    weights: str | None = None
    steps: int | None = None
    start_step: int | None = None
    sampler: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    tile: int | None = None
    tile_overlap: int = 16
    batch: int = 1  # tiles (of one window or several) per forward pass
    compile: str | None = None  # a torch.compile backend for the UNet step and VAE decoder; None: eager
    method: str = "satecco"
    random_weights: bool = False  # a benchmark: networks without trained weights keep random ones
    beta_schedule: str | None = None  # given by the user: must agree with the base model's scheduler/
    prediction_type: str | None = None
    refiner_w: float | None = None  # the refiner's w (Eq. 5) at inference; None: the trained one
    no_sfa: tuple[str, ...] = ()  # of ADAPTED: decoders whose SFA is switched off at inference
    no_tfa: tuple[str, ...] = ()
    color_fix: str | None = None  # of COLOR_FIXES; None: DEFAULT_COLOR_FIX for SATeCo's methods (applied_color_fix)

    @property
    def applied_color_fix(self) -> str:
        """The colour fix the run applies: the one given, else :data:`DEFAULT_COLOR_FIX` for SATeCo's methods."""
        if self.color_fix is not None:
            return self.color_fix
        return "none" if self.method in NO_DIFFUSION else DEFAULT_COLOR_FIX

    def diffusion_overrides(self) -> dict:
        """The :class:`DiffusionConfig` fields this spec sets (``None``: the preset's or base model's)."""
        return dict(steps=self.steps, start_step=self.start_step, sampler=self.sampler,
                    beta_schedule=self.beta_schedule, prediction_type=self.prediction_type)

    def with_embedded_default(self) -> ModelSpec:
        """The tiny preset takes each file it is not given from the embedded default (its trained base
        model folder, its trained SATeCo modules)."""
        weights = EMBEDDED_TINY / "satecco.safetensors"
        if self.preset != "tiny" or not weights.is_file():
            return self
        return replace(self, base_model=self.base_model or str(EMBEDDED_TINY), weights=self.weights or str(weights))

    def check_weights(self) -> None:
        """:class:`ValueError` unless every network has trained weights (given, or the embedded default's)
        or ``random_weights`` says this is a benchmark. The bicubic baseline has no network."""
        spec = self.with_embedded_default()
        missing = [flag for flag, value in (("--base-model DIR", spec.base_model), ("--weights FILE", spec.weights))
                   if value is None]
        if missing and not self.random_weights and self.method != "bicubic":
            raise ValueError(f"preset {self.preset!r} ships no weights: give {' and '.join(missing)}, or "
                             "--random-weights to run on random weights (benchmarks only)")

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {list(METHODS)}")
        for flag, values in (("--no-sfa", self.no_sfa), ("--no-tfa", self.no_tfa)):
            if set(values) - set(ADAPTED):
                raise ValueError(f"{flag} {list(values)}: choose among {list(ADAPTED)}")
        if self.color_fix is not None and self.color_fix not in COLOR_FIXES:
            raise ValueError(f"unknown colour fix {self.color_fix!r}; choose one of {list(COLOR_FIXES)}")
        given = [flag for flag, value in (("--no-sfa", self.no_sfa), ("--no-tfa", self.no_tfa),
                                          ("--refiner-w", self.refiner_w is not None),
                                          ("--color-fix", self.color_fix not in (None, "none"))) if value]
        if given and self.method in NO_DIFFUSION:
            raise ValueError(f"{' and '.join(given)} act on SATeCo's diffusion branch and refiner, "
                             f"which --method {self.method} does not run")
