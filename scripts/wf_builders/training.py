"""Workflow of the training node: train Pix2Pix on the bundled procedural data set, then translate with it."""
from scripts.build_workflows import Workflow

DATA = "gan_pack_train_outlines"     # workflows/inputs/gan_pack_train_outlines/ (scripts/make_training_example.py)
OUTLINES = "gan_pack_outlines.png"
RUN_NAME = "outlines_demo"


def train_pix2pix_folders(info) -> Workflow:
    wf = Workflow(info)
    wf.note("Train Pix2Pix on your own folders, then use the result at once. The bundled example set "
            f"(input/{DATA}/train/, 24 side-by-side A|B pairs: outline drawings | the same shapes filled) trains "
            "a small U-Net for 300 iterations of 4 images (one to two minutes on a CPU) and translates a new drawing "
            "with it: the shapes come out filled (the colour per shape kind needs longer -- queue again with "
            "continue_training on to carry on from the saved state). The preview shows real A | fake B | real B as "
            "training goes. For this quick demo lr is 0.0005 with batches of 4; the reference's 0.0002 and batch 1 "
            "are the node's defaults.\n"
            "Your data: put input/<folder>/train/*.png (A|B side by side) or input/<folder>/trainA + trainB "
            "(same file names) and set data_folder; cyclegan takes trainA/ and trainB/ of unpaired images. The "
            "reference settings are the defaults (unet_256 at 256x256 crops, 200 epochs): long runs go to "
            "scripts/train.py with the same options and files.")
    train = wf.add("GANPackTrainFromFolders", model="pix2pix", data_folder=DATA, name=RUN_NAME, iterations=300,
                   netG="unet_64", ngf=16, ndf=16, load_size=80, crop_size=64, batch_size=4, lr=0.0005,
                   save_every=100, preview_every=25, seed=0, continue_training=False, options="")
    wf.add("PreviewImage", title="Training preview (A | fake B | B)", images=train[1])
    img = wf.add("LoadImage", image=OUTLINES)
    out = wf.add("GANPackTranslate", translator=train[0], image=img[0])
    wf.add("SaveImage", images=out[0], filename_prefix="gan_pack/trained_pix2pix")
    return wf


BUILDERS = {"train_pix2pix_folders": train_pix2pix_folders}
