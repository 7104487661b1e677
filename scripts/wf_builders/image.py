"""Workflows of the image utility nodes."""
from scripts.build_workflows import Workflow


def image_channels(info) -> Workflow:
    wf = Workflow(info)
    wf.note("Image Channels (GAN): shows the grayscale view a 1-channel GAN model gets, and the alpha mask.\n"
            "The example image is copied into ComfyUI's input folder when the pack loads.")
    img = wf.add("LoadImage", image="gan_pack_example.png")
    conv = wf.add("GANPackImageChannels", image=img[0], mode="grayscale")
    wf.add("SaveImage", images=conv[0], filename_prefix="gan_pack/channels")
    return wf


BUILDERS = {"image_channels": image_channels}
