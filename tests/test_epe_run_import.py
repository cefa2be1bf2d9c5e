"""Continuing a reference training run in epeflow: `epeflow epe import run` -> init.pt -> `train.init_from`."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from epe_reference import build_reference_generator, reference_code_dir, reference_network_modules
from test_epe_parity_discriminator import reference_network as reference_discriminator
from train_fixtures import TINY_TRAIN, make_experiment, one_torch_thread

from epeflow.artifacts import checkpoints as ckpt
from epeflow.artifacts.init_state import read_init_state
from epeflow.cli import main
from epeflow.common.taxonomy import NUM_MATERIALS
from epeflow.epe.discriminator_checkpoint import export_discriminator
from epeflow.epe.generator_checkpoint import export_generator
from epeflow.epe.run_checkpoint import ReferenceRun, adam_state_by_name, import_run, sibling
from epeflow.errors import EpeflowError
from epeflow.models import load_generator
from epeflow.models.ienet import IENet
from epeflow.models.ppde import PPDE, PPDEConfig
from epeflow.train import run_train
from epeflow.train.init_from import fast_forward
from epeflow.train.loop import generator_config
from epeflow.train.settings import TrainSettings

# Narrow networks (the reference's widths train 4x slower; their keys are tested in test_epe_*_checkpoint.py),
# with the reference's 194 MSeg labels.
SPEC = TINY_TRAIN
TINY_DISC = PPDEConfig(max_dim=64, num_layers=2, width=0.125)
REFERENCE_STEPS = 3  # updates of each network in the simulated reference run
NARROW = {"width": 0.125}  # 2-stage generators this narrow have the shapes of wider ones in places: say it


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return make_experiment(tmp_path_factory.mktemp("exp"))


def tiny_generator(seed: int = 5, **settings) -> IENet:
    torch.manual_seed(seed)
    return IENet(generator_config(TrainSettings.from_spec({**SPEC, **settings}), "all", 3, NUM_MATERIALS))


def reference_save(folder: Path, name: str, networks: dict[str, torch.nn.Module], steps: int = REFERENCE_STEPS,
                   optimizers: bool = True) -> dict[str, Path]:
    """What the reference's _save_model writes after `steps` updates of each network: per network its state
    dict and, with `optimizers`, the state dicts of its Adam (weight decay 1e-4, as NetworkState) and StepLR."""
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / f"{name}-{2 * steps}"
    files = {}
    for short, module in networks.items():
        opt = torch.optim.Adam(module.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=100000, gamma=1.0)
        noise = torch.Generator().manual_seed(len(short))
        for _ in range(steps):
            opt.zero_grad()
            sum((p * torch.rand(p.shape, generator=noise)).sum() for p in module.parameters()).backward()
            opt.step()
            sched.step()
        files[short] = Path(f"{base}_{short}-network.pth.tar")
        if short == "gen":
            export_generator(module, files[short], allow_nonreference=True)
        else:
            export_discriminator(module, files[short], reference_shapes=False)
        if optimizers:
            torch.save(opt.state_dict(), f"{base}_{short}-optimizer.pth.tar")
            torch.save(sched.state_dict(), f"{base}_{short}-scheduler.pth.tar")
    return files


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A simulated reference save after 3 updates of each network, and init.pt imported from it by the CLI."""
    folder = tmp_path_factory.mktemp("reference")
    gen, disc = tiny_generator(), PPDE(TINY_DISC)
    files = reference_save(folder / "savegames", "pfd2cs", {"gen": gen, "disc": disc})
    init = folder / "init.pt"
    assert main(["epe", "import", "run", "--generator", str(files["gen"]), "--discriminator", str(files["disc"]),
                 "--gbuffer-mode", "all", "--width", "0.125", "--out", str(init)]) == 0
    return {"files": files, "init": init, "gen": gen.state_dict(), "disc": disc.state_dict()}


def _train(exp, root: Path, **spec):
    return run_train(**exp.train_args(root / "model.pt", root / "checkpoints"), spec={**SPEC, **spec}, weights={},
                     allow_random=True)


def test_import_maps_adam_state_by_parameter_name(reference, tmp_path):
    init = read_init_state(reference["init"])
    assert init["iteration"] == REFERENCE_STEPS and "last_epoch" in init["source"]["iteration_from"]
    saved = torch.load(sibling(reference["files"]["gen"], "optimizer"), weights_only=True)
    names = [n for n, _ in IENet.from_config(init["generator_config"]).named_parameters()]
    for index, name in enumerate(names):
        assert torch.equal(init["adam_g"]["state"][name]["exp_avg"], saved["state"][index]["exp_avg"]), name
        assert int(init["adam_g"]["state"][name]["step"]) == REFERENCE_STEPS
    assert init["adam_g"]["hyper"]["weight_decay"] == 1e-4

    # the reference's own discriminator (train_pfd2cs.yaml): 170 parameters, 194 labels (MSeg's taxonomy)
    files = reference_save(tmp_path, "pfd2cs", {"gen": tiny_generator(), "disc": PPDE(PPDEConfig())}, steps=1)
    import_run(ReferenceRun.beside(files["gen"], files["disc"]), tmp_path / "init.pt", gbuffer_mode="all", **NARROW)
    init = read_init_state(tmp_path / "init.pt")
    assert init["discriminator_config"] == PPDEConfig().to_dict() and init["discriminator_config"]["num_labels"] == 194
    assert len(init["adam_d"]["state"]) == 170


def test_training_continues_from_the_reference_weights_and_adam_state(exp, reference, tmp_path, hub_dir, caplog):
    root, source = tmp_path / "run", str(reference["init"])
    _train(exp, root, iterations=REFERENCE_STEPS, init_from=source)  # nothing left to train
    _, model = load_generator(root / "model.pt")
    for k, v in reference["gen"].items():  # the run starts from the reference's generator, buffers included
        assert torch.equal(model["generator"][k], v), k
    init_record = model["provenance"]["init_from"]
    assert init_record["iteration"] == REFERENCE_STEPS and len(init_record["sha256"]) == 64

    with caplog.at_level(logging.INFO):
        _train(exp, root, iterations=REFERENCE_STEPS + 1, init_from=source)
    assert f"starting from {source} at iteration {REFERENCE_STEPS}" in caplog.text
    assert "weight_decay 0.0001 -> 0" in caplog.text  # the reference's Adam setting that this run drops
    state = torch.load(ckpt.checkpoint_path(root / "checkpoints", REFERENCE_STEPS + 1), weights_only=True)
    for opt in ("opt_g", "opt_d"):  # the reference's 3 Adam steps plus this run's 1
        assert {int(s["step"]) for s in state[opt]["state"].values()} == {REFERENCE_STEPS + 1}
    assert state["sched_g"]["last_epoch"] == REFERENCE_STEPS + 1
    for name, ref, module in (("generator", reference["gen"], IENet.from_config(state["generator_config"])),
                              ("discriminator", reference["disc"], PPDE(TINY_DISC))):
        params = [k for k, _ in module.named_parameters()]  # buffers (spectral-norm vectors) move on their own
        moved = max((state[name][k] - ref[k]).abs().max().item() for k in params)
        assert 0 < moved < 0.01, name  # one Adam step at lr 1e-4 away from the reference's weights

    caplog.clear()
    with caplog.at_level(logging.INFO):
        _train(exp, root, iterations=REFERENCE_STEPS + 2, init_from=source)
    assert f"(iteration {REFERENCE_STEPS + 1})" in caplog.text and "starting from" not in caplog.text


def test_a_rewritten_init_state_is_a_new_run(exp, reference, tmp_path, hub_dir, caplog):
    root, init, files = tmp_path / "run", tmp_path / "init.pt", reference["files"]
    import_run(ReferenceRun.beside(files["gen"], files["disc"]), init, gbuffer_mode="all", **NARROW)
    _train(exp, root, iterations=REFERENCE_STEPS + 1, init_from=str(init))
    import_run(ReferenceRun.beside(files["gen"], files["disc"], optimizers=False), init, gbuffer_mode="all", **NARROW)
    with caplog.at_level(logging.INFO):
        _train(exp, root, iterations=REFERENCE_STEPS + 1, init_from=str(init))
    assert "inputs.init_from.sha256" in caplog.text and "starting fresh" in caplog.text  # not its old checkpoint
    assert f"Adam starts fresh at iteration {REFERENCE_STEPS}" in caplog.text
    state = torch.load(ckpt.checkpoint_path(root / "checkpoints", REFERENCE_STEPS + 1), weights_only=True)
    assert {int(s["step"]) for s in state["opt_g"]["state"].values()} == {1}

    caplog.clear()
    with caplog.at_level(logging.INFO):
        _train(exp, root, iterations=1)  # without init_from: another run again
    assert "inputs.init_from" in caplog.text and "starting fresh" in caplog.text and "starting from" not in caplog.text


def test_an_init_state_that_does_not_fit_the_experiment_is_named(exp, reference, tmp_path, hub_dir):
    source = str(reference["init"])
    with pytest.raises(EpeflowError, match=r"train.iterations`: 2 is below the 3 iterations"):
        _train(exp, tmp_path / "a", iterations=2, init_from=source)
    with pytest.raises(EpeflowError, match=r"max_dim 64 in the init state, 128 here \(train.discriminator_max_dim\)"):
        _train(exp, tmp_path / "b", init_from=source, discriminator_max_dim=128)
    with pytest.raises(EpeflowError, match=r"mis-shaped.*Config differences: width 0.125 .* 0.25 here \(train.gen"):
        _train(exp, tmp_path / "c", init_from=source, generator_width=0.25)
    with pytest.raises(EpeflowError, match="set `train.discriminator: ppde`"):
        _train(exp, tmp_path / "d", init_from=source, discriminator="patchgan")
    with pytest.raises(EpeflowError, match="init state .*does not exist.*epeflow epe import run"):
        _train(exp, tmp_path / "e", init_from=str(tmp_path / "none.pt"))


def test_a_label_count_other_than_the_label_stages_is_an_error(exp, tmp_path, hub_dir):
    files = reference_save(tmp_path, "cs", {"gen": tiny_generator(), "disc": PPDE(replace(TINY_DISC, num_labels=19))},
                           optimizers=False)
    import_run(ReferenceRun.beside(files["gen"], files["disc"]), tmp_path / "init.pt", gbuffer_mode="all", **NARROW)
    with pytest.raises(EpeflowError, match=r"embeds 19 label classes .*labels.json\) has 194"):
        _train(exp, tmp_path / "run", init_from=str(tmp_path / "init.pt"))


def test_files_of_another_save_or_without_an_iteration_are_errors(reference, tmp_path):
    files = reference["files"]
    other = reference_save(tmp_path / "other", "x", {"gen": tiny_generator(generator_stages=3)})
    run = ReferenceRun(files["gen"], files["disc"], gen_optimizer=sibling(other["gen"], "optimizer"))
    with pytest.raises(EpeflowError, match=r"holds \d+ parameters but .*pfd2cs-6_gen-network.pth.tar has \d+"):
        import_run(run, tmp_path / "init.pt", gbuffer_mode="all", **NARROW)
    renamed = tmp_path / "final_gen-network.pth.tar"
    renamed.write_bytes(files["gen"].read_bytes())
    with pytest.raises(EpeflowError, match="pass --iteration N"):
        import_run(ReferenceRun(renamed, files["disc"]), tmp_path / "init.pt", gbuffer_mode="all", **NARROW)
    summary = import_run(ReferenceRun(files["gen"], files["disc"]), tmp_path / "init.pt", gbuffer_mode="all", **NARROW)
    assert summary["iteration"] == REFERENCE_STEPS and "// 2" in summary["iteration_from"]  # pfd2cs-6: 6 updates
    assert summary["optimizers"] == {"g": False, "d": False}


def test_adam_state_follows_the_files_parameter_order_not_ours():
    torch.manual_seed(0)
    module = PPDE(PPDEConfig(max_dim=16, num_layers=1, width=0.125, num_labels=5))
    named = list(module.named_parameters())[::-1]  # a network that registers its parameters the other way round
    opt = torch.optim.Adam([p for _, p in named])
    sum((p * torch.rand_like(p)).sum() for _, p in named).backward()
    opt.step()
    mapped = adam_state_by_name(opt.state_dict(), [(n, p.shape) for n, p in named], "opt", "net")
    for name, p in named:
        assert torch.equal(mapped["state"][name]["exp_avg"], opt.state[p]["exp_avg"]), name


def test_fast_forward_equals_stepping():
    def scheduler():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)

    opt_a, stepped = scheduler()
    for _ in range(7):
        opt_a.step()
        stepped.step()
    opt_b, jumped = scheduler()
    fast_forward(jumped, 7)
    assert jumped.state_dict() == stepped.state_dict() and opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
    for opt, sched in ((opt_a, stepped), (opt_b, jumped)):
        for _ in range(2):
            opt.step()
            sched.step()
    assert jumped.get_last_lr() == stepped.get_last_lr() == [0.1 * 0.5**3]


# Reference pfd2cs optimizer / scheduler sections (train_pfd2cs.yaml; NetworkState reads `step_gamma`, not `gamma`).
PFD2CS_STATE = {"optimizer": {"type": "adam", "learning_rate": 0.0001, "adam_beta": 0.9, "adam_beta2": 0.999,
                              "clip_gradient_norm": 1000},
                "scheduler": {"type": "step", "step": 100000, "gamma": 0.5}}


def reference_network_state(code: Path) -> type:
    """The reference's NetworkState (epe/experiment/BaseExperiment.py; needs scipy and yaml, not its package)."""
    spec = importlib.util.spec_from_file_location("reference_base_experiment",
                                                  code / "epe" / "experiment" / "BaseExperiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NetworkState


@pytest.mark.skipif(reference_code_dir() is None, reason="set EPEFLOW_REFERENCE_CODE to the reference code")
def test_the_files_the_reference_code_saves_import_with_each_moment_on_its_parameter(tmp_path):
    """The reference's own NetworkState trains its own networks 2 updates and saves them as _save_model does."""
    code = reference_code_dir()
    network_state = reference_network_state(code)
    with reference_network_modules(code) as modules:
        gen = build_reference_generator(modules, "geometry")
    with reference_discriminator(code) as net:
        disc = net.discriminators.PerceptualProjectionDiscEnsemble({"norm": "group", "num_layers": 4, "max_dim": 256})
    base, states = tmp_path / "pfd2cs-4", {}
    for short, module in (("gen", gen), ("disc", disc)):
        states[short] = state = network_state(module, PFD2CS_STATE, short)
        for _ in range(2):
            state.prepare()
            sum((p * torch.rand_like(p)).sum() for p in module.parameters()).backward()
            state.update()
        for kind, value in state.save_to_dict()[0].items():  # GANExperiment._save_model
            torch.save(value, f"{base}_{short}-{kind}.pth.tar")
    summary = import_run(ReferenceRun.beside(f"{base}_gen-network.pth.tar", f"{base}_disc-network.pth.tar"),
                         tmp_path / "init.pt")
    init = read_init_state(tmp_path / "init.pt")
    assert summary["iteration"] == 2 and init["discriminator_config"] == PPDEConfig().to_dict()
    for short, key in (("gen", "adam_g"), ("disc", "adam_d")):
        optimizer, module = states[short].optimizer, states[short].network
        assert len(init[key]["state"]) == len(list(module.parameters()))
        for name, p in module.named_parameters():
            assert torch.equal(init[key]["state"][name]["exp_avg_sq"], optimizer.state[p]["exp_avg_sq"]), name
