"""Workflows of the artistic style transfer nodes (Load Style Network, Style Transfer)."""
from scripts.build_workflows import Workflow

FILES_NOTE = ("Weight files are NOT downloaded: put them into ComfyUI/models/style_transfer/ (the node names the "
              "missing file and the folder otherwise). gatys: vgg19-dcbb9e9d.pth (torchvision VGG-19) or the "
              "caffe-converted vgg19-d01eb7cb.pth. adain: vgg_normalised.pth + decoder.pth (pytorch-AdaIN release). "
              "fast: candy.pth / mosaic.pth / udnie.pth / rain_princess.pth (PyTorch examples fast_neural_style). "
              "See the README section 'Artistic style transfer'. A workflow that needs no download: "
              "keyframe_stylize_shot (example-based stylisation with a keyframe-trained translator).")


def style_transfer_diffusion(info) -> Workflow:
    wf = Workflow(info)
    wf.note("Style transfer of a diffusion output: Stable Diffusion 1.5 makes the picture, Style Transfer (gatys) "
            "repaints it after the style image (gan_pack_style.png, a procedurally painted example; load any "
            "painting instead). Gatys optimises the picture itself, so its cost is iterations x one VGG-19 "
            "forward/backward pass: a GPU is strongly advised (measured on one CPU core: ~6 s per iteration at "
            "256 px, ~4x that at 512 px). Lower iterations or size to preview. For frames use adain or a fast "
            "network.\n" + FILES_NOTE)
    ckpt = wf.add("CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly.safetensors")
    pos = wf.add("CLIPTextEncode", title="Prompt", clip=ckpt[1],
                 text="a harbour town on a hill at dusk, fishing boats, houses with lit windows, photograph")
    neg = wf.add("CLIPTextEncode", title="Negative prompt", clip=ckpt[1], text="blurry, text, watermark")
    latent = wf.add("EmptyLatentImage", width=512, height=512, batch_size=1)
    sampled = wf.add("KSampler", model=ckpt[0], positive=pos[0], negative=neg[0], latent_image=latent[0], seed=42,
                     steps=20, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=1.0)
    picture = wf.add("VAEDecode", samples=sampled[0], vae=ckpt[2])
    wf.add("PreviewImage", title="Diffusion output", images=picture[0])
    style = wf.add("LoadImage", title="Style image", image="gan_pack_style.png")
    net = wf.add("GANPackLoadStyleNetwork", network_name="vgg19-dcbb9e9d.pth", adain_partner="auto",
                 vgg_convention="auto")
    styled = wf.add("GANPackStyleTransfer", style_network=net[0], content=picture[0], style=style[0], method="gatys",
                    strength=1.0, iterations=300, size=512, preserve_color="none", frame_consistency=True,
                    temporal_blend=0.0, seed=0, precision="auto")
    wf.add("SaveImage", images=styled[0], filename_prefix="gan_pack/style_diffusion")
    return wf


def style_transfer_frames(info) -> Workflow:
    from scripts.wf_builders.keyframe import SHOT_FOLDER, SHOT_PATTERN

    wf = Workflow(info)
    wf.note("A shot's frames through a fast style network (mosaic.pth from PyTorch's fast_neural_style examples), "
            "one forward pass per frame (measured on one CPU core: ~3 s per 512 x 512 frame). Load Image Sequence "
            "reads frames 1-8 of the bundled demo shot (input/gan_pack_shot/); point it at your own shot's folder. "
            "Save Image Sequence writes output/gan_pack/style_frames/frame_####.png with the shot's frame numbers. "
            "frame_consistency uses one colour mapping for the whole batch (less flicker); temporal_blend "
            "additionally holds static areas.\n" + FILES_NOTE)
    shot = wf.add("GANPackLoadImageSequence", title="Shot frames", folder=SHOT_FOLDER, pattern=SHOT_PATTERN,
                  first_frame=1, last_frame=8)
    net = wf.add("GANPackLoadStyleNetwork", network_name="mosaic.pth", adain_partner="auto", vgg_convention="auto")
    styled = wf.add("GANPackStyleTransfer", style_network=net[0], content=shot[0], method="fast", strength=1.0,
                    iterations=300, size=0, preserve_color="none", frame_consistency=True, temporal_blend=0.0,
                    seed=0, precision="auto")
    wf.add("GANPackSaveImageSequence", images=styled[0], frame_numbers=shot[1], folder="gan_pack/style_frames",
           pattern=SHOT_PATTERN)
    return wf


BUILDERS = {
    "style_transfer_diffusion": style_transfer_diffusion,
    "style_transfer_frames": style_transfer_frames,
}
