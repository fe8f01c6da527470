"""Fast inference options: a half-precision denoiser with fp32 scheduler maths, channels_last, CUDA graphs."""

import copy

import numpy as np
import pytest
import torch
from conftest import tiny_pipeline

from sinddm_pipeline import SinDDMImg2ImgPipeline, SinDDMPipeline
from sinddm_pipeline.acceleration import CUDAGraphDenoiser


def generate(pipe, seed=0, device="cpu", **kwargs):
    return pipe(generator=torch.Generator(device).manual_seed(seed), output_type="pt", **kwargs).images


def components(pipe):
    return {"denoiser": copy.deepcopy(pipe.denoiser), "scheduler": pipe.scheduler, "pyramid": pipe.pyramid}


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(dim=16)


def test_bf16_denoiser_keeps_samples_and_scheduler_in_fp32(pipe, monkeypatch):
    fast = SinDDMPipeline(**components(pipe)).to(dtype=torch.bfloat16)
    fast.set_progress_bar_config(disable=True)
    assert fast.denoiser.dtype == torch.bfloat16 and fast.sample_dtype == torch.float32
    assert fast.pyramid.image(0).dtype == torch.float32  # the uint8 pyramid is not cast

    seen = set()
    step = fast.scheduler.step

    def recording_step(model_output, timestep, sample, *args, **kwargs):
        seen.update({model_output.dtype, sample.dtype})
        return step(model_output, timestep, sample, *args, **kwargs)

    monkeypatch.setattr(fast.scheduler, "step", recording_step)
    images = generate(fast, 3, batch_size=2)
    assert seen == {torch.float32} and images.dtype == torch.float32
    exact = generate(pipe, 3, batch_size=2)
    # bf16 noise estimates (8-bit mantissa) move the result a little, not the picture
    difference = (images - exact).abs()
    assert difference.mean() < 0.03, difference.mean()


def test_channels_last_denoiser_gives_the_same_images(pipe):
    fast = SinDDMPipeline(**components(pipe))
    fast.denoiser.to(memory_format=torch.channels_last)
    fast.set_progress_bar_config(disable=True)
    assert fast.denoiser.blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(generate(fast, 5), generate(pipe, 5), atol=1e-4, rtol=0)


def test_img2img_with_a_bf16_denoiser(pipe):
    img2img = SinDDMImg2ImgPipeline(**components(pipe)).to(dtype=torch.bfloat16)
    img2img.set_progress_bar_config(disable=True)
    content = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)
    result = img2img(content, generator=torch.Generator().manual_seed(0), output_type="pt").images
    exact = SinDDMImg2ImgPipeline(**components(pipe))
    exact.set_progress_bar_config(disable=True)
    reference = exact(content, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert result.dtype == torch.float32 and (result - reference).abs().mean() < 0.03


def test_cuda_graphs_need_a_cuda_pipeline(pipe):
    with pytest.raises(ValueError, match="CUDA"):
        pipe.enable_cuda_graphs()
    with pytest.raises(ValueError, match="CUDA"):
        CUDAGraphDenoiser(pipe.denoiser)(torch.zeros(1, 3, 8, 8), 3, 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_give_the_eager_images():
    pipe = tiny_pipeline(dim=16).to("cuda")
    eager = generate(pipe, 7, "cuda", batch_size=2)
    pipe.enable_cuda_graphs()
    graphed = generate(pipe, 7, "cuda", batch_size=2)
    again = generate(pipe, 7, "cuda", batch_size=2)  # replays the graphs captured by the first call
    assert pipe._cuda_graph_denoiser.num_graphs == pipe.scheduler.num_scales
    torch.testing.assert_close(graphed, eager, atol=1e-4, rtol=0)
    torch.testing.assert_close(again, graphed, atol=0, rtol=0)
    other_size = generate(pipe, 7, "cuda", width_scale=1.5)
    assert other_size.shape[-1] > eager.shape[-1]
    pipe.disable_cuda_graphs()
    np.testing.assert_array_equal(generate(pipe, 7, "cuda", batch_size=2).cpu().numpy(), eager.cpu().numpy())


@pytest.mark.parametrize("with_code", [False, True])
def test_from_pretrained_with_a_bf16_dtype(pipe, tmp_path, with_code):
    if with_code:
        from sinddm_pipeline.hub import prepare_hub_folder

        prepare_hub_folder(pipe, tmp_path, num_grid_samples=0)
    else:
        pipe.save_pretrained(tmp_path)
    loaded = SinDDMPipeline.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert loaded.denoiser.dtype == torch.bfloat16 and loaded.sample_dtype == torch.float32
    assert {buffer.dtype for buffer in loaded.pyramid.buffers()} == {torch.uint8}
    loaded.set_progress_bar_config(disable=True)
    assert generate(loaded, 1, num_inference_steps=3).dtype == torch.float32
