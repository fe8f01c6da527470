"""SinDDM web app (Gradio): `python app.py`, then open the printed address. Also the Hugging Face Space's entry point.

The app is the `sinddm_app` package (one module per tab); this file parses the flags and launches it. Host and port
follow GRADIO_SERVER_NAME / GRADIO_SERVER_PORT. Flags: ``--allow_folders`` (or SINDDM_APP_ALLOW_FOLDERS=1) and
``--dtype bf16`` (or SINDDM_APP_BF16=1; ``--bf16`` is its deprecated spelling), described in ``--help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sinddm_app import blocks, models, settings
from sinddm_pipeline.cli_flags import add_deprecated_alias


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The launcher's flags (the old ``--bf16`` still works, with a FutureWarning)."""
    parser = argparse.ArgumentParser(description="The SinDDM web app.")
    parser.add_argument(
        "--dtype",
        choices=("fp32", "bf16"),
        default=None,
        help="The denoisers' weights for sampling. bf16 (with channels_last): about 4x faster on a CPU with bf16 "
        "instructions, ~17x slower on one without (the launcher then says so); samples and the scheduler stay fp32. "
        "Default fp32, the exact path (bf16 with SINDDM_APP_BF16=1). Not training's --mixed_precision (autocast).",
    )
    add_deprecated_alias(parser, "--bf16", "--dtype bf16", dest="dtype", const="bf16")
    parser.add_argument(
        "--allow_folders", action="store_true", help="Let the model box open pipeline folders of this machine."
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Launch the app (host and port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, else 127.0.0.1:7860)."""
    args = parse_args(argv)
    if args.dtype is not None:
        settings.BF16 = args.dtype == "bf16"
    settings.ALLOW_FOLDERS = args.allow_folders or settings.ALLOW_FOLDERS
    shipped = models.shipped_models()
    if settings.BF16 and shipped:
        note = models.bf16_note(
            models.load_pipeline(settings.DEFAULT_MODEL if settings.DEFAULT_MODEL in shipped else shipped[0])
        )
        if note:
            print(note)
    demo = blocks.build_demo().queue(default_concurrency_limit=2, max_size=32)
    demo.launch(allowed_paths=[str(settings.WORK_DIR)], mcp_server=settings.MCP_SERVER)


if __name__ == "__main__":
    main()
