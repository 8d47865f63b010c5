"""Stable Diffusion 1.5's architecture from its published configuration values, with no download.

The values below are those of the ``config.json`` files in ``stable-diffusion-v1-5/stable-diffusion-v1-5``
(unet/, vae/, text_encoder/, safety_checker/, scheduler/). Building the models from them on PyTorch's ``meta`` device costs no
memory, so sizes can be computed on any laptop; ``build_sd15_component`` with ``empty=False``
gives the real architecture with random weights (for speed and memory measurements).
"""
import torch
from accelerate import init_empty_weights

UNET_CONFIG = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280), attention_head_dim=8, cross_attention_dim=768,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0,
    downsample_padding=1, mid_block_scale_factor=1, center_input_sample=False,
)
VAE_CONFIG = dict(
    sample_size=512, in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    block_out_channels=(128, 256, 512, 512), act_fn="silu", norm_num_groups=32,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=0.18215,
)
TEXT_ENCODER_CONFIG = dict(  # CLIP ViT-L/14's text tower
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_attention_heads=12,
    num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
    bos_token_id=0, eos_token_id=2, pad_token_id=1,
)
# The safety checker is a CLIP ViT-L/14 image tower with a projection and 20 concept vectors; of
# its CLIPConfig only the vision part is ever built.
SAFETY_CHECKER_VISION_CONFIG = dict(
    hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
    patch_size=14, image_size=224, hidden_act="quick_gelu", layer_norm_eps=1e-5,
)
SAFETY_CHECKER_PROJECTION_DIM = 768
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1, clip_sample=False,
)
COMPONENTS = ("unet", "vae", "text_encoder", "safety_checker")


def build_sd15_component(name: str, empty: bool = True) -> torch.nn.Module:
    """SD 1.5's ``unet``, ``vae``, ``text_encoder`` or ``safety_checker`` with random weights.

    Args:
        name: one of ``COMPONENTS``.
        empty: build on the ``meta`` device (shapes only, no memory) - enough to count parameters.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPTextConfig, CLIPTextModel

    builders = {
        "unet": lambda: UNet2DConditionModel(**UNET_CONFIG),
        "vae": lambda: AutoencoderKL(**VAE_CONFIG),
        "text_encoder": lambda: CLIPTextModel(CLIPTextConfig(**TEXT_ENCODER_CONFIG)),
        "safety_checker": lambda: StableDiffusionSafetyChecker(safety_checker_config()),
    }
    if not isinstance(name, str) or name not in builders:
        raise ValueError(f"name={name!r} is not one of {COMPONENTS}.")
    if not isinstance(empty, bool):
        raise TypeError(f"empty must be True or False, got {empty!r}.")
    if empty:
        with init_empty_weights():
            return builders[name]()
    return builders[name]()


def safety_checker_config(vision: dict | None = None, projection_dim: int | None = None):
    """The ``CLIPConfig`` of SD 1.5's safety checker (``vision`` and ``projection_dim`` replace
    the published values, for a smaller stand-in)."""
    from transformers import CLIPConfig

    return CLIPConfig(text_config=dict(TEXT_ENCODER_CONFIG),
                      vision_config=dict(vision or SAFETY_CHECKER_VISION_CONFIG),
                      projection_dim=projection_dim or SAFETY_CHECKER_PROJECTION_DIM)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (works on ``meta``-device models too)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module such as pipe.unet, got {type(model).__name__}.")
    return sum(p.numel() for p in model.parameters())
