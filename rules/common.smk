# Config helpers and input functions; rules stay declarations.
import json
from functools import cache

from epeflow.config import dataset_stage_settings, dataset_stage_weights, may_have_gt_labels
from epeflow.workflow_config import config_entry, exit_on_error, validate_workflow_config
from epeflow.resources import dataset_frames, job_resources, job_threads, split_frames

# Fill defaults and cross-check datasets / experiments: an error is one short message naming the config
# file(s) and key, not a traceback.
_OVERLAYS = [str(f) for f in workflow.overwrite_configfiles]
with exit_on_error():
    config.update(validate_workflow_config(
        config, [f for f in map(str, workflow.configfiles) if f not in _OVERLAYS] + _OVERLAYS
    ))


wildcard_constraints:
    ds="[A-Za-z0-9_.-]+",
    exp="(?!datasets$)[A-Za-z0-9_.-]+",


def as_json(obj):
    """Settings passed to a command as one argument; Snakemake reruns the job when they change."""
    return json.dumps(obj, sort_keys=True)


def dataset(name):
    """A dataset's config entry; a name not in the config (a target typo) stops with the defined names."""
    with exit_on_error():
        return config_entry(config, "datasets", name)


def experiment(wildcards):
    with exit_on_error():
        return config_entry(config, "experiments", wildcards.exp)


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
    """G-buffer store of an experiment's source dataset; none for an image-only generator (`train.image_only`,
    implied by `gbuffers: none`)."""
    if experiment(wildcards)["train"]["image_only"]:
        return []
    return f"results/datasets/{experiment(wildcards)['source']}/gbuffers.zarr"


def materials_labels_input(wildcards):
    """The source's robust labels where they give the generator its materials: a dataset without GT labels
    and a generator that reads materials (not image-only)."""
    exp = experiment(wildcards)
    if exp["train"]["image_only"] or may_have_gt_labels(dataset(exp["source"])):
        return []
    return f"results/datasets/{exp['source']}/labels"


def gbuffers_flag(wildcards, input):
    return f"--gbuffers {input.gbuffers}" if input.gbuffers else ""


def materials_labels_flag(wildcards, input):
    return f"--robust-labels {input.labels}" if input.labels else ""


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


# --- what each job asks the scheduler for (config `resources:`, epeflow.resources) ---


def dataset_frame_count(name):
    """Frames of a dataset at plan time (a demo's count, else its listing's)."""
    entry = dataset(name)
    return dataset_frames(entry, "" if "demo" in entry else _dataset_content(name))


def dataset_job_frames(wildcards):
    """Frames one job of a dataset stage handles: the dataset's, shared among its shards (`{n}`)."""
    if not hasattr(wildcards, "ds"):
        return 0
    return -(-dataset_frame_count(wildcards.ds) // int(getattr(wildcards, "n", 1)))


def knn_frames(wildcards):
    exp = experiment(wildcards)
    return dataset_frame_count(exp["source"]) + dataset_frame_count(exp["target"])


def enhance_frames(wildcards):
    exp = experiment(wildcards)
    spec = exp["enhance"]
    return split_frames(dataset_frame_count(exp["source"]), dataset(exp["source"]), spec["split"], spec["max_frames"])


def evaluate_frames(wildcards):
    exp = experiment(wildcards)
    spec = exp["evaluate"]
    real = split_frames(dataset_frame_count(exp["target"]), dataset(exp["target"]), spec["real_split"], spec["max_frames"])
    return enhance_frames(wildcards) + real


def gpus_unless_cpu(section):
    """1 GPU unless the experiment's `<section>.device` is cpu."""
    return lambda wc: 0 if experiment(wc)[section]["device"] == "cpu" else 1


def train_need_gpus(wildcards):
    return 0 if experiment(wildcards)["train"]["device"] == "cpu" else train_gpus(wildcards)


def stage_resources(stage, frames=dataset_job_frames, need_gpus=lambda wc: 0):
    """A rule's `resources:` from the config's `resources.<stage>`, per job (frames and GPU need from its
    wildcards). Keys the config leaves to the profile are not set at all, so its default-resources apply."""
    keys = job_resources(config, stage, frames=0, need_gpus=1)

    def value(key):
        return lambda wc: job_resources(config, stage, frames=frames(wc), need_gpus=need_gpus(wc))[key]

    return {key: value(key) for key in keys}


def stage_threads(stage):
    """A rule's threads: `resources.<stage>.cpus` (per GPU for training)."""
    if stage == "train":
        return lambda wc: job_threads(config, stage, train_need_gpus(wc))
    return job_threads(config, stage)
