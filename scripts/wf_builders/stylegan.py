"""Workflows of the StyleGAN nodes: style-mixing grid, latent-walk animation, StyleGAN -> diffusion refine."""
from scripts.build_workflows import Workflow

BUNDLED = "gan_pack_islands64.safetensors"
DIFFUSION_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"


def style_mixing(info) -> Workflow:
    wf = Workflow(info)
    wf.note("Style mixing grid (like the StyleGAN paper's figure): the top row shows the column seeds, the left "
            "column the row seeds; every other cell is the row's latent with the column's COARSE layers copied in.\n"
            "With the bundled islands model the coarse layers carry the layout (where the islands are, their "
            "shapes) and the fine layers the colours: each cell has its column's layout in its row's "
            "colours. "
            "Set layers to 'fine' to swap the roles. Put your own StyleGAN2/3 pickle or .safetensors in "
            "ComfyUI/models/stylegan and pick it in Load StyleGAN.")
    model = wf.add("GANPackLoadStyleGAN", model_name=BUNDLED)
    rows = wf.add("GANPackStyleGANLatent", title="Row seeds (keep fine layers)", stylegan=model[0], seeds="1-4",
                  truncation_psi=1.0, truncation_cutoff=0, class_index=0)
    cols = wf.add("GANPackStyleGANLatent", title="Column seeds (give coarse layers)", stylegan=model[0],
                  seeds="11-15", truncation_psi=1.0, truncation_cutoff=0, class_index=0)
    mix = wf.add("GANPackStyleMix", stylegan=model[0], row_latent=rows[0], column_latent=cols[0], layers="coarse",
                 custom_layers="0-1", mode="grid")
    synth = wf.add("GANPackStyleGANSynthesize", stylegan=model[0], latent=mix[0], noise_mode="const", seed=0,
                   batch_size=8)
    grid = wf.add("GANPackStyleGANImageGrid", images=synth[0], columns=mix[1], fill=0.0)
    wf.add("SaveImage", images=grid[0], filename_prefix="gan_pack/style_mixing")
    return wf


def latent_walk(info) -> Workflow:
    wf = Workflow(info)
    wf.note("Latent walk: a seamless 48-frame loop through three seeds (smooth easing in W), saved as a numbered "
            "frame batch. Raise frames for a slower walk, add seeds for more keyframes; space 'z' walks the "
            "model's own latent distribution instead. Combine the frames with any video-save node.")
    model = wf.add("GANPackLoadStyleGAN", model_name=BUNDLED)
    keys = wf.add("GANPackStyleGANLatent", title="Keyframe seeds", stylegan=model[0], seeds="3,8,21",
                  truncation_psi=1.0, truncation_cutoff=0, class_index=0)
    walk = wf.add("GANPackStyleGANInterpolate", stylegan=model[0], keyframes=keys[0], frames=48, space="w",
                  easing="smooth", loop=True)
    synth = wf.add("GANPackStyleGANSynthesize", stylegan=model[0], latent=walk[0], noise_mode="const", seed=0,
                   batch_size=8)
    wf.add("SaveImage", images=synth[0], filename_prefix="gan_pack/latent_walk")
    return wf


def to_diffusion(info) -> Workflow:
    wf = Workflow(info)
    wf.note("StyleGAN -> diffusion refine: a StyleGAN image, upscaled to 512 px, encoded by the checkpoint's VAE and "
            "re-sampled at low denoise (img2img) so the diffusion model adds detail while keeping the StyleGAN "
            f"composition. Needs a Stable Diffusion 1.5 checkpoint: {DIFFUSION_CHECKPOINT} in "
            "ComfyUI/models/checkpoints (or pick any checkpoint you have). Raise denoise for more change.")
    gen = wf.add("GANPackStyleGANGenerate", model_name=BUNDLED, seeds="7", truncation_psi=1.0)
    up = wf.add("ImageScale", image=gen[0], upscale_method="bilinear", width=512, height=512, crop="disabled")
    ckpt = wf.add("CheckpointLoaderSimple", ckpt_name=DIFFUSION_CHECKPOINT)
    pos = wf.add("CLIPTextEncode", title="Positive prompt", clip=ckpt[1],
                 text="aerial photo of islands in a calm sea, detailed coastline, high quality")
    neg = wf.add("CLIPTextEncode", title="Negative prompt", clip=ckpt[1], text="blurry, lowres, text, watermark")
    enc = wf.add("VAEEncode", pixels=up[0], vae=ckpt[2])
    samp = wf.add("KSampler", model=ckpt[0], seed=0, steps=20, cfg=6.0, sampler_name="euler", scheduler="normal",
                  positive=pos[0], negative=neg[0], latent_image=enc[0], denoise=0.35)
    dec = wf.add("VAEDecode", samples=samp[0], vae=ckpt[2])
    wf.add("SaveImage", images=dec[0], filename_prefix="gan_pack/stylegan_refined")
    return wf


def edit_sweep(info) -> Workflow:
    wf = Workflow(info)
    wf.note("Semantic editing: StyleGAN Directions finds the model's own editing directions with SeFa (from the "
            "weights alone, no data, no download); Edit Sweep moves one latent along the first four, from -3 to +3 "
            "sigma (the middle column is the unedited picture); the grid has one row per direction. With the "
            "bundled islands model direction 0 darkens and greens the sea towards +3 sigma; the README's "
            "'StyleGAN semantic editing' section lists what each direction changes, measured.\n"
            "Edit a photo: Project Image to Latent -> Edit Latent -> Synthesize. Use your own InterFaceGAN / "
            "encoder4editing direction files from ComfyUI/models/stylegan_directions with direction_file.")
    model = wf.add("GANPackLoadStyleGAN", model_name=BUNDLED)
    latent = wf.add("GANPackStyleGANLatent", title="Latent to edit", stylegan=model[0], seeds="5",
                    truncation_psi=1.0, truncation_cutoff=0, class_index=0)
    dirs = wf.add("GANPackStyleGANDirections", stylegan=model[0], method="sefa", layers="all", custom_layers="0-3",
                  n_samples=10000, seed=0)
    sweep = wf.add("GANPackStyleGANEditSweep", stylegan=model[0], latent=latent[0], directions=dirs[0],
                   direction_indices="0-3", strength_min=-3.0, strength_max=3.0, steps=7, direction_file="(none)",
                   units="sigma", layers="as computed", custom_layers="0-3", renormalize=False)
    synth = wf.add("GANPackStyleGANSynthesize", stylegan=model[0], latent=sweep[0], noise_mode="const", seed=0,
                   batch_size=8)
    grid = wf.add("GANPackStyleGANImageGrid", images=synth[0], columns=sweep[1], fill=0.0)
    wf.add("SaveImage", images=grid[0], filename_prefix="gan_pack/edit_sweep")
    return wf


BUILDERS = {
    "stylegan_style_mixing": style_mixing,
    "stylegan_latent_walk": latent_walk,
    "stylegan_to_diffusion": to_diffusion,
    "stylegan_edit_sweep": edit_sweep,
}
