"""Sizes of MiniSD's parts and the standard classes built from them.

``FULL`` is what ``assets/minisd`` is trained with; ``SMOKE`` is the same recipe at a size that
trains end to end in seconds (CI). Every part is a stock transformers / diffusers class.
"""
from dataclasses import dataclass, replace

from diffusers import AutoencoderKL, DDIMScheduler, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig


@dataclass(frozen=True)
class Recipe:
    """Every size, step count and learning rate of one training run (defaults: the full run)."""
    variants: int = 8                 # random renderings of each of the 4,500 train digits
    limit: int | None = None          # use only the first `limit` train digits (smoke)
    # CLIP: text and vision towers trained contrastively
    text_hidden: int = 64
    text_layers: int = 2
    vision_hidden: int = 64
    vision_layers: int = 3
    clip_steps: int = 1500
    clip_batch: int = 128
    clip_lr: float = 1e-3             # 2e-3 learns colour but never digits (zero-shot stays at chance)
    # VAE: 3x32x32 <-> 4x8x8
    vae_channels: tuple = (16, 32, 64)
    vae_layers: int = 1
    vae_steps: int = 3000
    vae_batch: int = 32
    vae_lr: float = 1e-3
    vae_kl: float = 1e-5
    decoder_lr: float = 3e-4          # decoder fine-tuning, encoder frozen, on all nine colours
    # U-Net: noise prediction with cross-attention to the frozen text encoder
    unet_channels: tuple = (48, 96)
    unet_layers: int = 1
    unet_heads: int = 4               # diffusers calls this `attention_head_dim` (it is the head count)
    unet_steps: int = 5000
    unet_batch: int = 64
    unet_lr: float = 1e-3
    unet_warmup: int = 100
    ema_decay: float = 0.999
    min_snr_gamma: float = 5.0
    checkpoint_every_s: float = 180.0  # how often the U-Net stage saves a resumable checkpoint


FULL = Recipe()
SMOKE = replace(FULL, variants=1, limit=256, text_layers=1, vision_layers=1, clip_steps=8,
                clip_batch=32, vae_channels=(8, 16, 16), unet_heads=2, vae_steps=8, vae_batch=16,
                unet_channels=(32, 32), unet_layers=1, unet_steps=8, unet_batch=16, unet_warmup=2,
                checkpoint_every_s=1e-6)  # a checkpoint every step: resuming is exercised


def build_clip(recipe: Recipe, vocab_size: int, max_length: int, bos: int, eos: int) -> CLIPModel:
    """A tiny CLIP: text tower (hidden ``text_hidden``) and a 32px, patch-4 vision tower."""
    text = CLIPTextConfig(vocab_size=vocab_size, hidden_size=recipe.text_hidden,
                          intermediate_size=4 * recipe.text_hidden, projection_dim=recipe.text_hidden,
                          num_hidden_layers=recipe.text_layers, num_attention_heads=4,
                          max_position_embeddings=max_length, bos_token_id=bos, eos_token_id=eos,
                          pad_token_id=eos)
    vision = CLIPVisionConfig(hidden_size=recipe.vision_hidden,
                              intermediate_size=4 * recipe.vision_hidden,
                              projection_dim=recipe.text_hidden,
                              num_hidden_layers=recipe.vision_layers, num_attention_heads=4,
                              image_size=32, patch_size=4, num_channels=3)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                        projection_dim=recipe.text_hidden)
    return CLIPModel(config)


def build_vae(recipe: Recipe) -> AutoencoderKL:
    """``AutoencoderKL``: 3x32x32 images <-> 4x8x8 latents (three blocks: two downsamplings)."""
    n = len(recipe.vae_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=32,
                         down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n,
                         block_out_channels=recipe.vae_channels, layers_per_block=recipe.vae_layers,
                         norm_num_groups=min(32, recipe.vae_channels[0] // 2))


def build_unet(recipe: Recipe, cross_attention_dim: int) -> UNet2DConditionModel:
    """``UNet2DConditionModel`` on 4x8x8 latents with cross-attention at every resolution."""
    n = len(recipe.unet_channels)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                down_block_types=("CrossAttnDownBlock2D",) * n,
                                up_block_types=("CrossAttnUpBlock2D",) * n,
                                block_out_channels=recipe.unet_channels,
                                layers_per_block=recipe.unet_layers,
                                attention_head_dim=recipe.unet_heads,
                                cross_attention_dim=cross_attention_dim,
                                norm_num_groups=min(32, recipe.unet_channels[0] // 2))


def build_scheduler() -> PNDMScheduler:
    """Stable Diffusion v1's scheduler and noise schedule, exactly as SD v1.5 ships it."""
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False,
                              steps_offset=1)
    # SD v1.5's config also says clip_sample=False. PNDM ignores it, but DDIM and DDPM built with
    # from_config(pipe.scheduler.config) would otherwise clip their x0 estimate to [-1, 1], which
    # is wrong for latents (they are not pixels).
    scheduler.register_to_config(clip_sample=False)
    return scheduler


def build_sampler() -> DDIMScheduler:
    """The scheduler the MiniSD pipeline ships with: DDIM on SD v1's noise schedule.

    SD v1.5 ships PNDM. On MiniSD at the default guidance 7.5, PNDM's four-step extrapolation
    overshoots: on six colour prompts (6 seeds each, 25 steps) it drew the asked colour 0% of the
    time, against 100% for DDIM on 48 digit-and-colour prompts at 25 and at 12 steps (digit 100%
    too). DDIM also keeps ``add_noise(x, noise, t)`` exact for any training timestep ``t`` after
    sampling, as PNDM does (DPM-Solver and Euler map ``t`` onto their sampling schedule).
    Lesson 05 swaps every scheduler in and measures them; any can be set with ``from_config``.
    """
    # "leading" timestep spacing, as SD v1.5's config gives any scheduler made from it.
    return DDIMScheduler.from_config(build_scheduler().config, timestep_spacing="leading")
