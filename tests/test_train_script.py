"""train_sinddm.py end to end on the CPU: tiny runs, kill and resume, two processes, bad inputs, the Hub push."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_image
from PIL import Image
from safetensors.torch import load_file

from sinddm_pipeline import SinDDMModel, SinDDMPipeline
from sinddm_pipeline.training_state import checkpoint_step, find_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train_sinddm.py"
# Tiny and single-threaded: fast, and deterministic between runs.
TINY = ["--dim", "8", "--train_batch_size", "2", "--num_threads", "1"]
PIPELINE_FILES = [
    "model_index.json",
    "denoiser/config.json",
    "denoiser/diffusion_pytorch_model.safetensors",
    "scheduler/scheduler_config.json",
    "pyramid/config.json",
    "pyramid/diffusion_pytorch_model.safetensors",
]


def _load_script() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("train_sinddm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_sinddm = _load_script()


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def reset_accelerate_state() -> None:
    """accelerate keeps one process-wide state (mixed precision, dynamo backend): a fresh one for the next run."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def image_path(tmp_path) -> Path:
    """An 88x51 image: two scales (72x42, 88x51), about the smallest that trains."""
    path = tmp_path / "image.png"
    synthetic_image(88, 51).save(path)
    return path


def argv(image, output_dir, *extra: str) -> list[str]:
    return ["--image_path", str(image), "--output_dir", str(output_dir), *TINY, *extra]


def train(*args: str) -> SinDDMPipeline:
    return train_sinddm.main(train_sinddm.parse_args(list(args)))


def script_env(tmp_path: Path) -> dict[str, str]:
    """A fresh machine: no accelerate config file (HF_HOME is empty), no GPU, the package importable."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "HF_HOME": str(tmp_path / "hf_home"),
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------------------------
# a short run


def test_short_run_writes_a_loadable_pipeline(tmp_path, image_path):
    output_dir = tmp_path / "out"
    returned = train(
        *argv(image_path, output_dir, "--max_train_steps", "20", "--checkpointing_steps", "10"),
        *["--dim", "16", "--train_batch_size", "4"],
    )
    for name in [*PIPELINE_FILES, "loss_curve.png", "training_args.json", "checkpoint-10", "checkpoint-20"]:
        assert (output_dir / name).exists(), name
    for folder in ["denoiser", "scheduler", "pyramid"]:
        assert not [p for p in (output_dir / folder).iterdir() if p.suffix in (".bin", ".pkl")]
    checkpoint = output_dir / "checkpoint-20"
    assert (checkpoint / "training_state.safetensors").is_file() and (checkpoint / "checkpoint_complete.json").is_file()
    assert not list(checkpoint.glob("custom_checkpoint_*"))  # no pickled custom state (it would be unpickled)
    losses = json.loads((output_dir / "loss_log.json").read_text())
    assert [step for step, _ in losses] == list(range(1, 21)) and all(np.isfinite([v for _, v in losses]))
    assert Image.open(output_dir / "loss_curve.png").size == (640, 320)

    pipe = SinDDMPipeline.from_pretrained(output_dir)
    assert pipe.denoiser.config.dim == 16
    for name, value in returned.denoiser.state_dict().items():  # the saved weights are the EMA weights
        assert torch.equal(pipe.denoiser.state_dict()[name], value)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=1, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (1, 51, 88, 3) and np.isfinite(images).all()


def test_log_every_batches_the_readback_but_logs_every_step(tmp_path, image_path):
    base = ["--max_train_steps", "7", "--checkpointing_steps", "5"]
    train(*argv(image_path, tmp_path / "each", *base))
    train(*argv(image_path, tmp_path / "batched", *base, "--log_every", "3"))
    each = json.loads((tmp_path / "each" / "loss_log.json").read_text())
    batched = json.loads((tmp_path / "batched" / "loss_log.json").read_text())
    assert [step for step, _ in batched] == list(range(1, 8)) and batched == each


def test_speed_up_options_train_a_model_close_to_the_exact_one(tmp_path, image_path):
    base = ["--max_train_steps", "6", "--checkpointing_steps", "6"]
    exact = train(*argv(image_path, tmp_path / "exact", *base))
    reset_accelerate_state()
    fast = train(
        *argv(image_path, tmp_path / "fast", *base),
        *["--channels_last", "--fused_adam", "--cudnn_benchmark", "--allow_tf32", "--mixed_precision", "bf16"],
    )
    reset_accelerate_state()
    assert json.loads((tmp_path / "fast" / "training_args.json").read_text())["channels_last"] is True
    reloaded = SinDDMPipeline.from_pretrained(tmp_path / "fast")
    for name, value in fast.denoiser.state_dict().items():
        assert torch.equal(reloaded.denoiser.state_dict()[name], value)  # channels_last weights save and load
    for name, value in exact.denoiser.state_dict().items():
        # 6 Adam steps of lr 1e-3 move each weight by at most 6e-3; bf16 autocast changes the path only slightly
        torch.testing.assert_close(reloaded.denoiser.state_dict()[name], value, atol=3e-3, rtol=0)


def test_device_rng_on_the_cpu_is_the_default_stream(tmp_path, image_path):
    base = ["--max_train_steps", "4", "--checkpointing_steps", "4", "--crop_size", "40"]
    default = train(*argv(image_path, tmp_path / "default", *base))
    device_rng = train(*argv(image_path, tmp_path / "device_rng", *base, "--device_rng"))
    for name, value in default.denoiser.state_dict().items():
        assert torch.equal(device_rng.denoiser.state_dict()[name], value), name


@pytest.mark.parametrize(("log_every", "stop_step"), [("1", 1), ("3", 3)])
def test_max_train_minutes_stops_at_a_readback_and_saves_everything(tmp_path, image_path, caplog, log_every, stop_step):
    output_dir = tmp_path / "out"
    caplog.set_level("INFO", logger="sinddm_pipeline.trainer")
    args = ["--max_train_steps", "50", "--checkpointing_steps", "40", "--log_every", log_every]
    train(*argv(image_path, output_dir, *args, "--max_train_minutes", "1e-9"))
    assert [step for step, _ in json.loads((output_dir / "loss_log.json").read_text())] == list(range(1, stop_step + 1))
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == [f"checkpoint-{stop_step}"]
    assert SinDDMPipeline.from_pretrained(output_dir).denoiser.config.dim == 8
    assert "stopped by --max_train_minutes" in caplog.text
    # resumable like any other checkpoint: the run goes on to --max_train_steps
    resumed = argv(image_path, output_dir, "--max_train_steps", "5", "--resume_from_checkpoint", "latest")
    train(*resumed)
    assert len(json.loads((output_dir / "loss_log.json").read_text())) == 5


@pytest.mark.slow
def test_compiled_training_matches_the_eager_run(tmp_path, image_path):
    base = ["--max_train_steps", "4", "--checkpointing_steps", "4"]
    eager = train(*argv(image_path, tmp_path / "eager", *base))
    reset_accelerate_state()
    compiled = train(*argv(image_path, tmp_path / "compiled", *base, "--compile"))
    reset_accelerate_state()
    for name, value in eager.denoiser.state_dict().items():
        torch.testing.assert_close(compiled.denoiser.state_dict()[name], value, atol=1e-5, rtol=1e-4)
    assert SinDDMPipeline.from_pretrained(tmp_path / "compiled").denoiser.config.dim == 8


# ---------------------------------------------------------------------------------------------------------------
# kill and resume


def _kill_after_first_checkpoint(output_dir: Path, args: list[str], env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 120
    try:
        while not (output_dir / "checkpoint-4").is_dir():
            if process.poll() is not None:
                pytest.fail(f"training ended before it was killed: {process.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("no checkpoint within 120 s")
            time.sleep(0.02)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()


def test_killed_run_resumes_exactly(tmp_path, image_path, capsys):
    """SIGKILL a run after a checkpoint, resume it with `latest`: the weights, the EMA, the optimizer and LR
    scheduler states and the loss log end equal to an uninterrupted run's. The EMA averages (ema_start 3) and the LR
    halves (milestones 5, 9) within the run, so both are exercised across the resume."""
    common = ["--checkpointing_steps", "4", "--ema_start", "3", "--ema_update_every", "2", "--lr_milestones", "5", "9"]
    killed, uninterrupted = tmp_path / "killed", tmp_path / "uninterrupted"
    _kill_after_first_checkpoint(
        killed, argv(image_path, killed, "--max_train_steps", "100000", *common), script_env(tmp_path)
    )

    step = checkpoint_step(find_checkpoint(str(killed), "latest"))
    leftover = killed / f"checkpoint-{step + 4}.tmp"  # as if killed while writing the next checkpoint
    leftover.mkdir(exist_ok=True)
    (leftover / "model.safetensors").write_bytes(b"truncated")
    total = step + 6
    train(*argv(image_path, killed, "--max_train_steps", str(total), "--resume_from_checkpoint", "latest", *common))
    assert f"Resuming from {killed / f'checkpoint-{step}'}" in capsys.readouterr().out
    assert not leftover.exists()
    train(*argv(image_path, uninterrupted, "--max_train_steps", str(total), *common))

    a, b = killed / f"checkpoint-{total}", uninterrupted / f"checkpoint-{total}"
    for name, value in load_file(b / "model.safetensors").items():
        torch.testing.assert_close(load_file(a / "model.safetensors")[name], value, atol=1e-6, rtol=0)
    ema_a = SinDDMModel.from_pretrained(killed, subfolder="denoiser").state_dict()
    ema_b = SinDDMModel.from_pretrained(uninterrupted, subfolder="denoiser").state_dict()
    for name, value in ema_b.items():
        torch.testing.assert_close(ema_a[name], value, atol=1e-6, rtol=0)
    optimizer_a, optimizer_b = (torch.load(c / "optimizer.bin", weights_only=True) for c in (a, b))
    for index, state in optimizer_b["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(optimizer_a["state"][index][key], value, atol=1e-6, rtol=0)
    lr_a, lr_b = (torch.load(c / "scheduler.bin", weights_only=False) for c in (a, b))
    assert lr_a["last_epoch"] == lr_b["last_epoch"] == total and lr_a["_last_lr"] == lr_b["_last_lr"] == [2.5e-4]

    log_a, log_b = (json.loads((folder / "loss_log.json").read_text()) for folder in (killed, uninterrupted))
    assert [s for s, _ in log_a] == list(range(1, total + 1))  # continuous: no gap, no duplicate
    np.testing.assert_allclose([v for _, v in log_a], [v for _, v in log_b], atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# two processes on the CPU


LAUNCHERS = {
    # --num_machines/--mixed_precision/--dynamo_backend: without them (and no `accelerate config` file) accelerate
    # warns that it used defaults. --multi_gpu also starts CPU processes; `--cpu --num_processes 2` starts only one.
    "accelerate": lambda port: [
        *[sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"],
        *["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)],
    ],
    "torchrun": lambda port: [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
    ],
}


def launch(launcher: str, args: list[str], tmp_path: Path) -> str:
    """Run train_sinddm.py under ``launcher`` with two CPU processes; return its output (stdout + stderr)."""
    command = [*LAUNCHERS[launcher](free_port()), str(SCRIPT), *args]
    result = subprocess.run(command, env=script_env(tmp_path), capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    return log


def final_digests(log: str) -> dict[str, str]:
    """{rank: weights digest} from the "Process <rank>: final denoiser weights sha256 <digest>" lines."""
    digests = {}
    for line in log.splitlines():
        if "final denoiser weights sha256" in line:
            digests[line.split("Process ")[1].split(":")[0]] = line.split()[-1]
    return digests


needs_distributed = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is absent")


@needs_distributed
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_train_one_data_parallel_model(tmp_path, image_path, launcher):
    """Both ranks join one gloo group (each logs its rank), draw different noise (the seed depends on the rank),
    and still end with identical weights: the gradients were averaged. The main process alone writes the folder."""
    output_dir = tmp_path / "out"
    args = argv(
        image_path, output_dir, "--max_train_steps", "4", "--checkpointing_steps", "2", "--train_batch_size", "4"
    )
    log = launch(launcher, args, tmp_path)
    assert "Num processes = 2" in log and "Total batch size = 4 (2 per process)" in log
    digests = final_digests(log)
    assert set(digests) == {"0", "1"} and len(set(digests.values())) == 1, digests
    assert log.count("Saved the pipeline") == 1
    assert "Traceback" not in log and "Grad strides" not in log
    if launcher == "accelerate":
        assert "values were not passed" not in log
    for name in PIPELINE_FILES:
        assert (output_dir / name).exists(), name
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in (output_dir / "checkpoint-4").iterdir()}
    assert len(json.loads((output_dir / "loss_log.json").read_text())) == 4


@pytest.mark.slow
@needs_distributed
def test_two_process_resume_matches_the_uninterrupted_run(tmp_path, image_path):
    """accelerate writes registered objects from the main process only, so a noise generator state saved with the
    checkpoint would hand rank 1 the noise of rank 0 after a resume (that design ended 5e-3 away from the
    uninterrupted run). The noise is seeded per (step, rank) instead: resuming on two processes is exact."""
    common = ["--max_train_steps", "6", "--checkpointing_steps", "2", "--train_batch_size", "4", "--ema_start", "1"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    launch("accelerate", argv(image_path, full, *common), tmp_path)
    log = launch(
        "accelerate",
        argv(image_path, resumed, *common, "--resume_from_checkpoint", str(full / "checkpoint-2")),
        tmp_path,
    )
    assert "Resuming from" in log
    a, b = (load_file(folder / "checkpoint-6" / "model.safetensors") for folder in (full, resumed))
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, atol=1e-6, rtol=0)
    log_a, log_b = (json.loads((folder / "loss_log.json").read_text()) for folder in (full, resumed))
    assert [s for s, _ in log_b] == list(range(1, 7))
    np.testing.assert_allclose([v for _, v in log_b], [v for _, v in log_a], atol=1e-6, rtol=0)


def test_crops_and_validation_grids(tmp_path, image_path):
    output_dir = tmp_path / "out"
    train(*argv(image_path, output_dir, "--max_train_steps", "2", "--crop_size", "48", "--validation_steps", "2"))
    grid = Image.open(output_dir / "validation" / "samples-0000002.png")
    assert grid.size == (4 * (88 + 2) + 2, 51 + 4)


# ---------------------------------------------------------------------------------------------------------------
# bad inputs


def _occupied(tmp_path: Path) -> Path:
    folder = tmp_path / "occupied"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    return folder


def _text_png(tmp_path: Path) -> Path:
    path = tmp_path / "notes.png"
    path.write_text("these are notes, not pixels\n")
    return path


def _tiny_png(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.png"
    synthetic_image(40, 40).save(path)
    return path


BAD_INPUTS = {
    "missing image": (lambda tmp, image: (tmp / "missing.png", tmp / "out"), ["No image at"]),
    "not an image": (lambda tmp, image: (_text_png(tmp), tmp / "out"), ["not an image file PIL can read"]),
    "too small": (lambda tmp, image: (_tiny_png(tmp), tmp / "out"), ["(40x40) is too small for SinDDM", "short side"]),
    "occupied output_dir": (
        lambda tmp, image: (image, _occupied(tmp)),
        ["already holds a model", "--resume_from_checkpoint latest", "--overwrite"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_give_one_error_line_and_exit_code_2(tmp_path, image_path, capsys, case):
    make, fragments = BAD_INPUTS[case]
    image, output_dir = make(tmp_path, image_path)
    assert train_sinddm.cli(argv(image, output_dir, "--max_train_steps", "2")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, err
    if case != "occupied output_dir":
        assert not output_dir.exists()  # refused before anything was written
    else:
        assert sorted(os.listdir(output_dir)) == ["model_index.json"]


def test_script_prints_the_error_without_a_traceback(tmp_path):
    command = [sys.executable, str(SCRIPT), *argv(_text_png(tmp_path), tmp_path / "out")]
    result = subprocess.run(command, env=script_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "not an image file" in result.stderr


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["--dim", "15"], "--dim must be even"),
        (["--max_train_steps", "0"], "must be >= 1"),
        (["--max_train_minutes", "0"], "--max_train_minutes must be a finite number > 0"),
        (["--max_train_minutes", "nan"], "--max_train_minutes must be a finite number > 0"),
    ],
)
def test_bad_arguments_exit_with_code_2(tmp_path, image_path, capsys, bad, message):
    with pytest.raises(SystemExit) as exit_info:
        train_sinddm.parse_args(argv(image_path, tmp_path / "out", *bad))
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_overwrite_replaces_the_previous_run(tmp_path, image_path):
    output_dir = tmp_path / "out"
    train(*argv(image_path, output_dir, "--max_train_steps", "4", "--checkpointing_steps", "2"))
    train(*argv(image_path, output_dir, "--max_train_steps", "2", "--checkpointing_steps", "2", "--overwrite"))
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-2"]  # no stale checkpoint-4
    assert len(json.loads((output_dir / "loss_log.json").read_text())) == 2


def test_a_resume_on_another_image_is_refused(tmp_path, image_path, capsys):
    output_dir = tmp_path / "out"
    train(*argv(image_path, output_dir, "--max_train_steps", "2", "--checkpointing_steps", "2"))
    other = tmp_path / "other.png"
    synthetic_image(88, 51, seed=5).save(other)
    resume = ["--max_train_steps", "4", "--resume_from_checkpoint", "latest"]
    assert train_sinddm.cli(argv(other, output_dir, *resume)) == 2
    assert "was trained on another image or pyramid" in capsys.readouterr().err
    assert not (output_dir / "checkpoint-4").exists()


def test_an_unwritable_output_folder_is_refused_before_training(tmp_path, image_path, monkeypatch, capsys):
    import sinddm_pipeline.training_state as training_state

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(training_state.tempfile, "NamedTemporaryFile", denied)  # root ignores chmod: simulate it
    output_dir = tmp_path / "out"
    assert train_sinddm.cli(argv(image_path, output_dir, "--max_train_steps", "2")) == 2
    assert "is not writable (Permission denied): nothing was trained" in capsys.readouterr().err
    assert not list(output_dir.iterdir())


def test_resume_latest_without_checkpoints_still_guards_the_folder(tmp_path, image_path, capsys):
    occupied = _occupied(tmp_path)
    assert (
        train_sinddm.cli(argv(image_path, occupied, "--max_train_steps", "2", "--resume_from_checkpoint", "latest"))
        == 2
    )
    assert "already holds a model" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [("L", "converted L to RGB"), ("RGBA", "alpha channel is dropped"), ("I;16", "converted I;16")],
)
def test_other_image_modes_train_after_a_logged_conversion(tmp_path, caplog, mode, fragment):
    array = np.asarray(synthetic_image(88, 51))
    if mode == "L":
        image = Image.fromarray(array[..., 0])
    elif mode == "RGBA":
        image = Image.fromarray(np.dstack([array, np.full(array.shape[:2], 128, np.uint8)]))
    else:
        image = Image.fromarray(array[..., 0].astype(np.uint16) * 257)
    path = tmp_path / f"image_{mode.replace(';', '')}.png"
    image.save(path)
    assert Image.open(path).mode == mode
    caplog.set_level("INFO")
    train(*argv(path, tmp_path / "out", "--max_train_steps", "2"))
    assert any(fragment in record.getMessage() for record in caplog.records), [r.getMessage() for r in caplog.records]
    assert (tmp_path / "out" / "model_index.json").exists()


# ---------------------------------------------------------------------------------------------------------------
# --push_to_hub (no network: the Hub calls are recorded)


def test_push_to_hub_writes_the_card_and_uploads_the_pipeline(tmp_path, image_path, hub_calls):
    output_dir = tmp_path / "my-sinddm"
    hub = ["--push_to_hub", "--hub_model_id", "me/tiny-sinddm", "--hub_private_repo", "--hub_token", "hf_secret"]
    train(*argv(image_path, output_dir, "--max_train_steps", "2", *hub))

    assert hub_calls["create_repo"] == {
        "repo_id": "me/tiny-sinddm",
        "token": "hf_secret",
        "private": True,
        "exist_ok": True,
    }
    upload = hub_calls["upload_folder"]
    assert upload["repo_id"] == "me/tiny-sinddm" and upload["token"] == "hf_secret"
    # The folder prepared by sinddm_pipeline.hub.prepare_hub_folder (a temporary copy, with the shipped code)
    assert Path(upload["folder_path"]) != output_dir and not Path(upload["folder_path"]).exists()
    card_files = {"README.md", "training_image.png", "samples.png", "loss_curve.png", "training_args.json"}
    code_files = {f"{folder}sinddm_pipeline.py" for folder in ("", "denoiser/", "scheduler/", "pyramid/")}
    assert set(upload["uploaded"]) == set(PIPELINE_FILES) | card_files | code_files
    assert upload["uploaded_model_index"]["_class_name"] == ["sinddm_pipeline", "SinDDMPipeline"]
    assert (output_dir / "checkpoint-2").is_dir() and (output_dir / "loss_log.json").exists()  # kept locally
    assert json.loads((output_dir / "model_index.json").read_text())["_class_name"] == "SinDDMPipeline"

    card = (output_dir / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: diffusers" in card
    assert "pipeline_tag: unconditional-image-generation" in card and "license: mit" in card
    assert "- sinddm" in card and "- single-image" in card
    assert 'SinDDMPipeline.from_pretrained("me/tiny-sinddm")' in card and "image.png" in card
    assert "hf_secret" not in card and "hf_secret" not in (output_dir / "training_args.json").read_text()
    assert Image.open(output_dir / "training_image.png").size == (88, 51)
    assert "![samples](samples.png)" in card and "trust_remote_code=True" in card and "![loss curve]" in card


def test_push_without_a_model_id_uses_the_folder_name(tmp_path, image_path, hub_calls):
    from sinddm_pipeline.hub import push_training_output

    output_dir = tmp_path / "balloons-sinddm"
    train(*argv(image_path, output_dir, "--max_train_steps", "1"))
    args = types.SimpleNamespace(output_dir=str(output_dir), hub_model_id=None, hub_private_repo=False, hub_token=None)
    assert push_training_output(args) == "me/balloons-sinddm"
    assert hub_calls["create_repo"]["repo_id"] == "balloons-sinddm" and hub_calls["create_repo"]["private"] is False
