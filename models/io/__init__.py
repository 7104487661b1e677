"""Image file formats that need more than Pillow: OpenEXR (``exr``). ``models.sequence`` dispatches to them by
file extension, so numbered sequences of every format share one loader, saver and renderer."""
