"""Image utility nodes: channel and colour conversions the GAN families rely on (engine: ``models.image``)."""
from __future__ import annotations

from ..models import image as gan_image

CATEGORY = "GAN/image"


class ImageChannels:
    DESCRIPTION = ("Converts an IMAGE batch between the channel layouts GANs expect: RGB, grayscale (luma in "
                   "three channels, ITU-R BT.601 weights), or with alpha removed. Uses the same conversion the "
                   "translators apply to 1-channel models, so you can preview what such a model sees.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "alpha")
    OUTPUT_TOOLTIPS = ("The converted RGB image batch.",
                       "The input's alpha channel as a mask (all ones when the input has none).")
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "Image batch to convert (any size; 1, 3 or 4 channels)."}),
            "mode": (["grayscale", "rgb", "invert"], {
                "default": "grayscale",
                "tooltip": "grayscale: luma in all three channels. rgb: drop alpha / expand gray to RGB. "
                           "invert: 1 - value, the mirror of the GAN range [-1, 1]."}),
        }}

    def convert(self, image, mode):
        rgb, alpha = gan_image.split_image_alpha(image)
        if mode == "grayscale":
            out = gan_image.rgb_to_gray_image(rgb)
        elif mode == "invert":
            out = gan_image.gan_to_image(-gan_image.image_to_gan(rgb))
        else:
            out = rgb
        return (out, alpha)


BATCH_INPUTS = 8


class BatchImages:
    DESCRIPTION = ("Joins up to eight images or frame batches into one batch, in input order (e.g. keyframes, "
                   "or single frames for a translator). Images of another size than the first are scaled to "
                   "cover it and cropped in the centre, like core Batch Images, unless sizes is set to "
                   "'must match'.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("All connected images as one batch, image1's frames first.",)
    FUNCTION = "batch"

    @classmethod
    def INPUT_TYPES(cls):
        optional = {f"image{i}": ("IMAGE", {"tooltip": f"Image or batch number {i} (optional)."})
                    for i in range(2, BATCH_INPUTS + 1)}
        return {"required": {
            "image1": ("IMAGE", {"tooltip": "The first image or batch; its size is the batch's size."}),
            "sizes": (["fit to first", "must match"], {"default": "fit to first", "tooltip":
                      "fit to first: other sizes are scaled to cover image1's size and centre-cropped. must match: "
                      "stop with a message naming the sizes when they differ (safer for frames)."}),
        }, "optional": optional}

    def batch(self, image1, sizes, **others):
        rest = [others.get(f"image{i}") for i in range(2, BATCH_INPUTS + 1)]
        return (gan_image.batch_images([image1, *rest], resize="error" if sizes == "must match" else "first"),)


NODE_CLASS_MAPPINGS = {"GANPackImageChannels": ImageChannels, "GANPackBatchImages": BatchImages}
NODE_DISPLAY_NAME_MAPPINGS = {"GANPackImageChannels": "Image Channels (GAN)",
                              "GANPackBatchImages": "Batch Images (GAN)"}
