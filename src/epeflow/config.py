"""Configuration: load YAML overlays, validate against the one schema, fill defaults, cross-check.

The same schema file is used by the Snakefile (`workflow/schemas/config.schema.yaml` links to it), so a
wrong key or type fails before any job runs, with a message naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml
from jsonschema import validators

from epeflow.errors import EpeflowError

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"
T = TypeVar("T")
SOURCE_KINDS = ("images", "filelist", "video", "demo")
VGG_RECEPTIVE_FIELD = 196  # relu5_3 of an unpadded VGG16 sees 196x196 pixels


@cache
def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def _with_defaults(validator_class: type) -> type:
    """A validator that fills `default:` values before checking properties (nested objects too)."""
    check_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if name in instance:
                    continue
                if "$ref" in subschema:
                    resolved = validator._resolver.lookup(subschema["$ref"]).contents
                    subschema = {**resolved, **{k: v for k, v in subschema.items() if k != "$ref"}}
                if "default" in subschema:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)


def key_path(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(error: jsonschema.ValidationError, prefix: tuple[str, ...] = ()) -> str:
    where = key_path([*prefix, *error.absolute_path])
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"config key `{where}`: unknown key(s) {', '.join(map(repr, extra))}{hint}"
    if error.validator == "enum":
        choices = ", ".join(map(str, error.validator_value))
        return f"config key `{where}`: {error.instance!r} is not one of: {choices}"
    return f"config key `{where}`: {error.message}"


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a validated copy of `config` with every default filled in; raise naming the bad key."""
    cfg = json.loads(json.dumps(config))  # plain JSON types, independent copy
    validator = _DefaultFillingValidator(load_schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise EpeflowError("invalid configuration:\n  " + "\n  ".join(_describe(e) for e in errors[:10]))
    _cross_check(cfg)
    _imply_image_only(cfg)
    return cfg


def may_have_gt_labels(entry: Mapping[str, Any]) -> bool:
    """Whether a dataset entry can give ground-truth labels (demo data, a file list, `gt_label_dir`); frames of
    a synthetic dataset without them take their materials from the robust labels."""
    return any(k in entry for k in ("demo", "filelist")) or bool(entry.get("gt_label_dir"))


def _imply_image_only(cfg: dict[str, Any]) -> None:
    """An experiment whose source dataset has no G-buffers (`gbuffers: none`: a folder of frames) trains the
    reference's image-only generator: `train.image_only` is set for it."""
    for exp in cfg["experiments"].values():
        if cfg["datasets"][exp["source"]]["gbuffers"] == "none":
            exp["train"]["image_only"] = True


# The keys of a dataset entry each dataset stage reads. Its rule passes only these (`dataset_stage_settings`),
# so a setting reruns the stages that read it and what follows from their outputs, nothing else.
DATASET_STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "demo": ("role", "demo"),
    "manifest": ("role", *SOURCE_KINDS, "extensions", "gbuffer_dir", "gbuffer_key", "gt_label_dir", "split",
                 "on_bad_frame", "max_frames"),
    "labels": ("labels", "gt_label_ids", "mseg"),
    "gbuffers": ("gbuffers", "gbuffer_key", "gbuffer_channels", "gbuffer_names", "fake_gbuffers"),
    "crops": ("crops",),
    "crop_stats": ("crops",),
}
_UNUSED_BY_METHOD = {  # keys a stage reads only for one of its methods: (method key, method) -> keys
    ("labels", "gt"): ("mseg",), ("labels", "mseg"): ("gt_label_ids",), ("labels", "given"): ("mseg", "gt_label_ids"),
    ("gbuffers", "real"): ("fake_gbuffers",), ("gbuffers", "fake"): ("gbuffer_key", "gbuffer_names"),
}
_STAGE_WEIGHTS = {("labels", "mseg"): ("mseg",), ("gbuffers", "fake"): ("vgg16",)}


def _method(entry: Mapping[str, Any], stage: str) -> str | None:
    """The method a dataset stage runs by (`labels: mseg`, `gbuffers: fake`, ...); None for other stages."""
    return entry.get(stage) if stage in ("labels", "gbuffers") else None


def dataset_stage_settings(entry: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """The part of a (validated) dataset entry that `stage` reads; the `crop_stats` part is the crops
    section's `stats_frames` and `seed`, plus `size` (crop statistics check that every frame fits a crop, the
    first stage after the manifest that can: a size change reruns the crops anyway), the `crops` part the
    whole crops section."""
    if stage == "crop_stats":
        return {k: entry["crops"][k] for k in ("stats_frames", "seed", "size")}
    if stage == "crops":
        return dict(entry["crops"])
    unused = _UNUSED_BY_METHOD.get((stage, _method(entry, stage)), ())
    return {k: entry[k] for k in DATASET_STAGE_KEYS[stage] if k in entry and k not in unused}


def dataset_stage_weights(entry: Mapping[str, Any], stage: str) -> tuple[str, ...]:
    """Names of the pretrained weights (`weights:` entries) `stage` loads for this dataset; none: no
    `--allow-random-weights` either, so those settings do not rerun it."""
    return ("vgg16",) if stage == "crops" else _STAGE_WEIGHTS.get((stage, _method(entry, stage)), ())


def validate_dataset(spec: Mapping[str, Any], name: str = "<spec>", stage: str | None = None) -> dict[str, Any]:
    """A dataset entry (as a rule passes it with --spec) validated, with its defaults filled in. With `stage`
    it may be just that stage's part (`dataset_stage_settings`): keys other stages need are not required."""
    required = None
    if stage is not None:
        required = [k for k in load_schema()["definitions"]["dataset"].get("required", [])
                    if k in DATASET_STAGE_KEYS[stage]]
    entry = validate_section("dataset", spec, ("datasets", name), required=required)
    if "split" in entry and (problem := check_split(entry["split"], f"datasets.{name}.split")):
        raise EpeflowError(f"invalid dataset settings:\n  {problem}")
    return entry


def validate_section(definition: str, spec: Mapping[str, Any], where: tuple[str, ...],
                     required: list[str] | None = None) -> dict[str, Any]:
    """A config section passed with --spec (schema `definitions.<definition>`), validated with defaults filled.

    `where` is the section's key path for error messages, e.g. ("experiments", "<exp>", "evaluate");
    `required` replaces the section's required keys (for a part of it).
    """
    entry = json.loads(json.dumps(spec))
    definitions = load_schema()["definitions"]
    if required is not None:
        definitions = {**definitions, definition: {**definitions[definition], "required": required}}
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions}
    errors = list(_DefaultFillingValidator(schema).iter_errors(entry))
    if errors:
        described = [_describe(e, where) for e in errors[:10]]
        raise EpeflowError(f"invalid {definition} settings:\n  " + "\n  ".join(described))
    return entry


def property_defaults(definition: str, *keys: str) -> dict[str, Any]:
    """Defaults of the properties of a schema object: `definitions.<definition>` or an object nested in it
    under `keys` (e.g. ("dataset", "mseg")), for settings classes that read a part of a section."""
    node = load_schema()["definitions"][definition]
    for key in keys:
        node = node["properties"][key]
    return {k: copy.deepcopy(v["default"]) for k, v in node["properties"].items() if "default" in v}


def settings_from_spec(cls: type[T], definition: str, spec: Mapping[str, Any] | None, where: tuple[str, ...]) -> T:
    """The one path from a `--spec` section to settings: schema validation with defaults filled in, then
    the frozen dataclass `cls` (JSON lists become tuples where the field is a tuple)."""
    values = validate_section(definition, dict(spec or {}), where)
    tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple")}
    values = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in values.items()}
    return build_dataclass(cls, values, f"config key `{key_path(where)}`")


def check_crop_fits_vgg(crops: Mapping[str, Any], where: str) -> str | None:
    """Without padding a crop must cover VGG16's relu5_3 receptive field; the problem, or None."""
    if crops["padding"] == "none" and crops["size"] < VGG_RECEPTIVE_FIELD:
        return (f"config key `{where}.size`: {crops['size']} is smaller than VGG16's receptive field "
                f"({VGG_RECEPTIVE_FIELD}) without padding; use size >= {VGG_RECEPTIVE_FIELD} or set "
                f"`{where}.padding: zero`")
    return None


def check_split(split: Mapping[str, Any], where: str) -> str | None:
    """Validation and test fractions must leave frames to train on; the problem, or None."""
    if split["val"] + split["test"] >= 1:
        return (f"config key `{where}`: val + test = {split['val']} + {split['test']} = "
                f"{split['val'] + split['test']:g} leaves no frames for training; keep the sum below 1")
    return None


def _cross_check(cfg: dict[str, Any]) -> None:
    """Checks a schema cannot express well, with messages that say what to change."""
    problems: list[str] = []
    for name, ds in cfg["datasets"].items():
        kinds = [k for k in SOURCE_KINDS if k in ds]
        if len(kinds) != 1:
            problems.append(
                f"config key `datasets.{name}`: give exactly one of {', '.join(SOURCE_KINDS)} "
                f"(found {', '.join(kinds) or 'none'})"
            )
        if ds["gbuffers"] != "none" and ds["role"] != "synthetic":
            problems.append(f"config key `datasets.{name}.gbuffers`: only synthetic datasets have G-buffers")
        if ds["labels"] == "given" and "filelist" not in ds:
            problems.append(
                f"config key `datasets.{name}.labels`: `given` needs a `filelist` with robust label paths"
            )
        has_gt = may_have_gt_labels(ds)
        if ds["labels"] == "gt" and not has_gt:
            problems.append(
                f"config key `datasets.{name}.labels`: `gt` needs ground-truth labels: set `gt_label_dir` "
                "(or give them in a `filelist`), or use `labels: mseg`"
            )
        if problem := check_split(ds["split"], f"datasets.{name}.split"):
            problems.append(problem)
        crops = ds["crops"]
        if problem := check_crop_fits_vgg(crops, f"datasets.{name}.crops"):
            problems.append(problem)
        if "demo" in ds:
            demo = ds["demo"]
            if min(demo["height"], demo["width"]) < crops["size"]:
                problems.append(
                    f"config key `datasets.{name}.crops.size`: {crops['size']} does not fit in the demo frames "
                    f"({demo['height']}x{demo['width']})"
                )
    for name, exp in cfg["experiments"].items():
        for side, role in (("source", "synthetic"), ("target", "real")):
            ds_name = exp[side]
            ds = cfg["datasets"].get(ds_name)
            if ds is None:
                problems.append(
                    f"config key `experiments.{name}.{side}`: no dataset named {ds_name!r} "
                    f"(defined: {', '.join(sorted(cfg['datasets']))})"
                )
            elif ds["role"] != role:
                problems.append(
                    f"config key `experiments.{name}.{side}`: dataset {ds_name!r} has role {ds['role']!r}, "
                    f"expected {role!r}"
                )
        src, dst = cfg["datasets"].get(exp["source"]), cfg["datasets"].get(exp["target"])
        if src and dst and src["crops"]["size"] != dst["crops"]["size"]:
            problems.append(
                f"config key `experiments.{name}`: datasets {exp['source']!r} and {exp['target']!r} use "
                f"different crop sizes ({src['crops']['size']} vs {dst['crops']['size']}); matched crops "
                "must have one size"
            )
        train_crop = exp["train"]["crop_size"]
        if src and train_crop and train_crop > src["crops"]["size"]:
            problems.append(
                f"config key `experiments.{name}.train.crop_size`: {train_crop} is larger than the matched crops "
                f"({src['crops']['size']} px, `datasets.{exp['source']}.crops.size`); use a smaller value or null"
            )
    if cfg.get("default_experiment") not in cfg["experiments"]:
        problems.append(
            f"config key `default_experiment`: {cfg.get('default_experiment')!r} is not an experiment "
            f"(defined: {', '.join(sorted(cfg['experiments']))})"
        )
    if problems:
        raise EpeflowError("invalid configuration:\n  " + "\n  ".join(problems))


def merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive update, the way Snakemake merges `--configfile` overlays."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Read YAML files in order (later ones overlay earlier ones) and validate the result."""
    cfg: dict[str, Any] = {}
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise EpeflowError(f"config file {path} does not exist")
        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise EpeflowError(f"config file {path} is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise EpeflowError(f"config file {path} must hold a mapping at the top level")
        cfg = merge(cfg, data)
    return validate_config(cfg)


def build_dataclass(cls: type[T], values: Mapping[str, Any], what: str) -> T:
    """Settings dataclass from a plain dict; unknown keys are an error naming them and the allowed ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise EpeflowError(f"{what}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
    return cls(**values)


def parse_json_arg(text: str, what: str) -> dict[str, Any]:
    """Settings passed from a rule as one JSON argument (so Snakemake reruns a job when they change)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise EpeflowError(f"{what}: not valid JSON ({e})") from e
    if not isinstance(value, dict):
        raise EpeflowError(f"{what}: expected a JSON object")
    return value
