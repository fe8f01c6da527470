"""The SinDDM web app (Gradio), one module per job; `app.py` at the repository root parses the flags and launches it.

- `settings`: the module-level settings (flags, environment, limits), read at call time: set or patch them there.
- `errors`, `gpu`: readable one-line errors; ``@spaces.GPU`` on a ZeroGPU Space (`on_gpu`).
- `models`: model names to cached pipelines (shipped, trained, uploaded images, Hub ids), fast mode, CLIP.
- `inputs`: the app's own checks of numbers, seeds, uploads and boxes (the pipelines check the rest).
- `files`, `progress`, `widgets`, `img2img`: zips and the temporary folder; step progress; shared layout pieces;
  the image-to-image call of two tabs.
- `editor`, `image_tasks`: an image with a brushed or uploaded mask (Harmonize, Edit, Inpaint); the controls and
  pipeline call the single-image task tabs share (Paint, Edit, Inpaint, Outpaint, Super-resolution).
- `picker`: the model picker and "Use your own image" (use_image).
- `tabs/`: one module per tab, its ``layout`` and its handlers (generate, text_edit, harmonize, style_transfer,
  roi_generate, paint and edit, inpaint and outpaint, super_resolution, animate, train and push_to_hub).
- `blocks`: `build_demo`, the page assembled from the list `TABS`.
"""
