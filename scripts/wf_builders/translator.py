"""Workflows of the Pix2Pix / CycleGAN translator nodes (bundled default models, shipped example inputs)."""
from scripts.build_workflows import Workflow

PIX2PIX_MODEL = "pix2pix/outlines2shapes_unet5_bn.safetensors"
CYCLEGAN_MODEL = "cyclegan/day2night_resnet6_in.safetensors"
OUTLINES = "gan_pack_outlines.png"
DAY_FRAMES = ["gan_pack_day_00.png", "gan_pack_day_01.png", "gan_pack_day_02.png"]
CHECKPOINT = "v1-5-pruned-emaonly.safetensors"


def pix2pix_image(info) -> Workflow:
    wf = Workflow(info)
    wf.note("Pix2Pix on one image. The bundled example model fills outline drawings: circles red, rectangles blue, "
            "triangles green (models/bundled/pix2pix/*.md is its model card).\n"
            "Your own models: put latest_net_G.pth or an official pretrained pix2pix file (facades_label2photo, "
            "edges2shoes, map2sat, ...) in ComfyUI/models/pix2pix and pick it in Load Translator. Any image size "
            "works; tile_size 0 tiles large frames automatically.")
    img = wf.add("LoadImage", image=OUTLINES)
    model = wf.add("GANPackLoadTranslator", model_name=PIX2PIX_MODEL, direction="auto")
    out = wf.add("GANPackTranslate", translator=model[0], image=img[0])
    wf.add("SaveImage", images=out[0], filename_prefix="gan_pack/pix2pix")
    return wf


def cyclegan_frames(info) -> Workflow:
    wf = Workflow(info)
    wf.note("CycleGAN on a batch of frames (three example frames joined by Batch Images (GAN)). The bundled "
            "example generator turns day scenes into night (see its model card in models/bundled/cyclegan/).\n"
            "Your own models: put latest_net_G_A.pth and latest_net_G_B.pth (or official ones like horse2zebra.pth, "
            "style_monet.pth) in ComfyUI/models/cyclegan; direction BtoA on a G_A file loads the G_B beside it. "
            "InstanceNorm statistics are whole-frame even when tiled, so tiles share one colour balance.")
    frames = [wf.add("LoadImage", title=f"Frame {i}", image=name) for i, name in enumerate(DAY_FRAMES)]
    batch = wf.add("GANPackBatchImages", title="Frames", image1=frames[0][0], image2=frames[1][0],
                   image3=frames[2][0], sizes="must match")
    model = wf.add("GANPackLoadTranslator", model_name=CYCLEGAN_MODEL, direction="auto")
    out = wf.add("GANPackTranslate", translator=model[0], image=batch[0], batch_size=2)
    wf.add("SaveImage", images=out[0], filename_prefix="gan_pack/cyclegan")
    return wf


def translator_to_diffusion(info) -> Workflow:
    wf = Workflow(info)
    wf.note("A translator's output as the start image of Stable Diffusion img2img: the day scene becomes night with "
            "the bundled CycleGAN-style model, then VAE Encode -> KSampler (denoise 0.45) -> VAE Decode refine it.\n"
            f"Needs a Stable Diffusion 1.5 checkpoint: put {CHECKPOINT} (or any SD1.x/SDXL checkpoint, then pick it) "
            "in ComfyUI/models/checkpoints.")
    img = wf.add("LoadImage", image=DAY_FRAMES[0])
    model = wf.add("GANPackLoadTranslator", model_name=CYCLEGAN_MODEL, direction="auto")
    night = wf.add("GANPackTranslate", translator=model[0], image=img[0])
    ckpt = wf.add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    pos = wf.add("CLIPTextEncode", title="Prompt", clip=ckpt[1],
                 text="a village at night under the moon, lit windows, storybook illustration, detailed")
    neg = wf.add("CLIPTextEncode", title="Negative prompt", clip=ckpt[1], text="blurry, daylight, sun")
    latent = wf.add("VAEEncode", pixels=night[0], vae=ckpt[2])
    sampled = wf.add("KSampler", model=ckpt[0], positive=pos[0], negative=neg[0], latent_image=latent[0], seed=1,
                     steps=20, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=0.45)
    decoded = wf.add("VAEDecode", samples=sampled[0], vae=ckpt[2])
    wf.add("SaveImage", images=decoded[0], filename_prefix="gan_pack/translator_diffusion")
    return wf


BUILDERS = {
    "pix2pix_image": pix2pix_image,
    "cyclegan_frames": cyclegan_frames,
    "translator_to_diffusion": translator_to_diffusion,
}
