"""The app's tabs, one module each, holding the tab's layout and its task handler(s).

A tab module has:

- ``layout(model: gr.Dropdown) -> list[gr.Image]``: builds the tab (``with gr.Tab(...)``) and wires its buttons to its
  handlers, each with an ``api_name``; returns the images that show the selected model's training image (most tabs:
  ``[]``), which `sinddm_app.blocks.build_demo` keeps up to date;
- its handlers, wrapped in `sinddm_app.gpu.on_gpu` (ZeroGPU and readable errors).

`sinddm_app.blocks.TABS` lists them in page order.
"""
