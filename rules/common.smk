# Config helpers and input functions; rules stay declarations.
import json
from functools import cache

from epeflow.config import dataset_stage_settings, dataset_stage_weights, validate_config

# Fill defaults and cross-check datasets / experiments (errors name the config key).
config.update(validate_config(config))


wildcard_constraints:
    ds="[A-Za-z0-9_.-]+",
    exp="(?!datasets$)[A-Za-z0-9_.-]+",


def as_json(obj):
    """Settings passed to a command as one argument; Snakemake reruns the job when they change."""
    return json.dumps(obj, sort_keys=True)


def dataset(name):
    return config["datasets"][name]


def experiment(wildcards):
    return config["experiments"][wildcards.exp]


def dataset_path(role, artifact):
    """results/datasets/<source|target of the experiment>/<artifact>."""
    return lambda wc: f"results/datasets/{experiment(wc)[role]}/{artifact}"


def random_flag(allowed):
    return "--allow-random-weights" if allowed else ""


def experiment_random_flag(wildcards):
    return random_flag(experiment(wildcards)["allow_random_weights"])


def weights_json(*names):
    """The `weights:` entries a command loads; changing another one does not rerun it."""
    return as_json({k: v for k, v in config.get("weights", {}).items() if k in names})


def dataset_settings(stage):
    """Params of a dataset stage: only the dataset keys it reads (epeflow.config.DATASET_STAGE_KEYS), so
    changing another key (say `crops.batch_size`) does not rerun it."""
    return lambda wc: as_json(dataset_stage_settings(dataset(wc.ds), stage))


def dataset_weights(stage):
    """The weights a dataset stage loads (none for `labels: gt` or `gbuffers: real`)."""
    return lambda wc: weights_json(*dataset_stage_weights(dataset(wc.ds), stage))


def dataset_random_flag(stage):
    """`--allow-random-weights` where the dataset allows it and the stage loads weights at all."""
    def flag(wc):
        entry = dataset(wc.ds)
        return random_flag(entry["allow_random_weights"] and bool(dataset_stage_weights(entry, stage)))

    return flag


@cache
def _dataset_content(name):
    from epeflow.datasets.fingerprint import listing_fingerprint

    return listing_fingerprint(dataset_stage_settings(dataset(name), "manifest"), name)


def dataset_content(wildcards):
    """Fingerprint of a dataset's files (relative paths, sizes, mtimes), taken when the workflow plans: a
    changed, added or removed frame reruns the manifest and what follows; an untouched dataset nothing."""
    return _dataset_content(wildcards.ds)


def demo_input(wildcards):
    """Generated demo datasets are produced by the `demo_data` rule; others are read in place."""
    return f"results/datasets/{wildcards.ds}/demo" if "demo" in dataset(wildcards.ds) else []


@cache
def num_shards(name):
    """Jobs of a per-frame stage of dataset `name`: ceil(frames / shard_frames), frames counted from its files
    (the listing the manifest fingerprint takes anyway) or its demo settings, so planning reads no manifest."""
    from epeflow.common.shards import shard_count
    from epeflow.datasets.fingerprint import planned_frames

    entry = dataset(name)
    listing = "" if "demo" in entry else _dataset_content(name)
    return shard_count(planned_frames(entry, listing), entry["shard_frames"])


def crop_shards(wildcards):
    n = max(dataset(wildcards.ds)["crops"]["shards"], num_shards(wildcards.ds))
    return [f"results/datasets/{wildcards.ds}/crops_shards/{i}-of-{n}.zarr" for i in range(n)]


def enhance_shards(wildcards):
    """Shards of an experiment's enhancement: its source dataset's `shard_frames` over the frames the
    enhanced split is expected to hold."""
    from epeflow.common.shards import shard_count, split_frames
    from epeflow.datasets.fingerprint import planned_frames

    exp = experiment(wildcards)
    name, spec = exp["source"], exp["enhance"]
    entry = dataset(name)
    total = planned_frames(entry, "" if "demo" in entry else _dataset_content(name))
    n = shard_count(split_frames(total, entry["split"], spec["split"], spec["max_frames"]), entry["shard_frames"])
    return [f"results/{wildcards.exp}/enhanced_shards/{i}-of-{n}" for i in range(n)]


def gbuffer_shards(wildcards):
    n = num_shards(wildcards.ds)
    return [f"results/datasets/{wildcards.ds}/gbuffers_shards/{i}-of-{n}.zarr" for i in range(n)]


def label_shards(wildcards):
    n = num_shards(wildcards.ds)
    return [f"results/datasets/{wildcards.ds}/labels_shards/{i}-of-{n}" for i in range(n)]


def gbuffers_input(wildcards):
    """G-buffer store of an experiment's source dataset."""
    return f"results/datasets/{experiment(wildcards)['source']}/gbuffers.zarr"


def train_init_input(wildcards):
    """The init state a run starts from (`train.init_from`), so a rewritten one retrains."""
    init = experiment(wildcards)["train"].get("init_from")
    return [init] if init else []


def default_targets():
    exp = config["default_experiment"]
    return [f"results/{exp}/report.html"]


def train_gpus(wildcards):
    return experiment(wildcards)["train"]["gpus"]


def train_threads(wildcards, threads):
    """torch threads of each training process: the job's threads shared among its GPUs' processes."""
    return max(1, threads // train_gpus(wildcards))


def train_launcher(wildcards):
    """torchrun, one process a GPU, when the experiment trains on several; nothing for one GPU.

    PET_* set torchrun options where torch has them (older versions ignore them): pass SIGUSR1 on to the
    processes as it does SIGTERM, and give them 4 minutes, not 30 s, to checkpoint before SIGKILL.
    """
    n = train_gpus(wildcards)
    if n == 1:
        return ""
    return (
        "env PET_SIGNALS_TO_HANDLE=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 PET_SHUTDOWN_TIMEOUT=240 "
        f"torchrun --standalone --nproc-per-node {n} --no-python"
    )
