"""Model job folders: ours, DIGITS' "Download Model" archive, and a DIGITS server's jobs folder.

| file | our jobs, DIGITS' download | a model job on a DIGITS server |
|---|---|---|
| deploy.prototxt, train_val.prototxt | in the folder | in the folder |
| snapshot_iter_N.caffemodel | in the folder | in the folder (beside .solverstate, caffe_output.log) |
| labels.txt, mean.binaryproto | in the folder (info.json names them) | in the **dataset** job's folder |
| info.json | yes | no: DIGITS keeps its settings in status.pickle |

`status.pickle` is never opened: unpickling a file runs whatever code it names.

**Snapshot.** `snapshot=N` is the iteration N of `snapshot_iter_N.caffemodel`, the number in
the file name (Caffe's naming; DIGITS shows epoch N x epochs / max_iter for it, which can be
fractional, so the iteration is the unambiguous key). The default is the largest N.

**The dataset job** is looked for only when the model folder lacks labels.txt, or lacks the
mean file its train_val.prototxt subtracts (`transform_param.mean_file`), and neither was given
as a file. In order, the first folder holding labels.txt wins:

1. `dataset=DIR` (`--dataset`), when given: only that folder.
2. Each folder train_val.prototxt's Data layers name: the parent of every `data_param.source`
   (DIGITS writes `<jobs>/<dataset-id>/train_db` and `val_db`; ImageData/HDF5Data/WindowData
   sources too) and of every `transform_param.mean_file`, TRAIN layer first. For each:
   a. the sibling `<model folder>/../<dataset-id>`: DIGITS' jobs folder holds
      `jobs/<model-id>/` and `jobs/<dataset-id>/` side by side, so a copied jobs folder keeps
      them together;
   b. the path as written (the DIGITS server itself; a relative path is taken from the model
      folder, Caffe's working directory under DIGITS).
3. info.json's `dataset_id` (sibling) and `dataset path` (ours), when there is an info.json.

None found: an error that lists every folder looked at and names --dataset, --labels, --mean.
From the dataset job come labels.txt and the mean (with --dataset they replace the model
folder's own; --labels and --mean replace either) (the file name train_val.prototxt gives, else
mean.binaryproto). Without info.json, the settings DIGITS recorded there are read from the files
that hold them: mean subtraction from train_val.prototxt (mean_file: image, mean_value: pixel,
neither: none), image dimensions from the mean blob. DIGITS' resize mode is in the dataset's
status.pickle only; the export then assumes DIGITS' default, squash (--resize-mode to change).
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from prototxt import blob_shape, caffe_pb2, read_blob, read_net
from .errors import ConverterError

log = logging.getLogger(__name__)
SNAPSHOT = re.compile(r"snapshot_iter_(\d+)\.caffemodel$")
LABELS = "labels.txt"
MEAN = "mean.binaryproto"


@dataclass
class JobFiles:
    deploy: Path
    weights: Path
    mean: Path | None = None
    labels: Path | None = None
    info: dict = field(default_factory=dict)  # info.json, or what the folder's files say
    train_val: Path | None = None
    dataset: Path | None = None  # the dataset job folder labels/mean came from, if looked up


def snapshots(folder: Path) -> dict[int, Path]:
    """snapshot_iter_N.caffemodel files by iteration N."""
    return dict(sorted((int(m.group(1)), p) for p in folder.iterdir()
                       if (m := SNAPSHOT.search(p.name)) and p.is_file()))


def find_job(folder: str | os.PathLike, snapshot: int | None = None,
             dataset: str | os.PathLike | None = None, labels_given: bool = False,
             mean_given: bool = False) -> JobFiles:
    """The files of a model job folder (see the module docstring). `labels_given`/`mean_given`:
    the caller has those files already, so no dataset job is needed for them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConverterError("no such model job folder", folder)
    deploy = folder / "deploy.prototxt"
    if not deploy.is_file():
        raise ConverterError("the folder has no deploy.prototxt; give a DIGITS model job folder "
                             "(or --model and --weights)", folder)
    found = snapshots(folder)
    if not found:
        raise ConverterError("the folder has no snapshot_iter_N.caffemodel; train the model first "
                             "or give --weights", folder)
    if snapshot is None:
        weights = found[max(found)]
    elif snapshot in found:
        weights = found[snapshot]
    else:
        raise ConverterError(f"no snapshot_iter_{snapshot}.caffemodel; --snapshot takes the "
                             f"iteration in a snapshot's file name: {', '.join(map(str, found))}",
                             folder)
    info = _read_info(folder)
    has_info = bool(info)
    mean = folder / info.get("mean file", MEAN)
    labels = folder / info.get("labels file", LABELS)
    train_val = folder / info.get("train_val file", "train_val.prototxt")
    files = JobFiles(deploy, weights, mean if mean.is_file() else None,
                     labels if labels.is_file() else None, info,
                     train_val if train_val.is_file() else None)
    lookup = not has_info or files.labels is None or files.mean is None or dataset is not None
    sources = _data_sources(files.train_val) if lookup else _Sources()
    if not has_info and files.train_val is not None:
        info["mean subtraction"] = ("image" if sources.mean_files else
                                    "pixel" if sources.mean_values else "none")
    need_labels = files.labels is None and not labels_given
    need_mean = files.mean is None and not mean_given and bool(sources.mean_files)
    if dataset is not None or need_labels or need_mean:
        candidates = _dataset_candidates(folder, dataset, sources, info if has_info else {})
        if dataset is not None or candidates:  # a dataset job is named somewhere: find it
            files.dataset = _pick_dataset(folder, candidates, dataset is not None)
            mean_name = Path(sources.mean_files[0]).name if sources.mean_files else MEAN
            if files.labels is None or dataset is not None:
                files.labels = files.dataset / LABELS
            if (files.mean is None or dataset is not None) and (files.dataset / mean_name).is_file():
                files.mean = files.dataset / mean_name
            if need_mean and files.mean is None:
                raise ConverterError(f"train_val.prototxt subtracts {sources.mean_files[0]}, but "
                                     f"neither the model job nor the dataset job {files.dataset} "
                                     f"has {mean_name}; give --mean", folder)
    if not has_info and files.mean is not None and "image dimensions" not in info:
        c, h, w = blob_shape(read_blob(files.mean))[-3:]
        info["image dimensions"] = [h, w, c]
    log.info("%s: snapshot %s", folder, files.weights.name)
    return files


def _read_info(folder: Path) -> dict:
    path = folder / "info.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except ValueError as exc:
        raise ConverterError(f"info.json is not valid JSON: {exc}", path) from None
    if not isinstance(info, dict):
        raise ConverterError("info.json is not a JSON object", path)
    return info


@dataclass
class _Sources:
    folders: list[str] = field(default_factory=list)  # dataset folders as written, in order
    mean_files: list[str] = field(default_factory=list)
    mean_values: bool = False


def _data_sources(train_val: Path | None) -> _Sources:
    """Where train_val.prototxt's data layers read from (TRAIN layers first)."""
    found = _Sources()
    if train_val is None:
        return found
    layers = [l for l in read_net(train_val).layer if l.type.endswith("Data")]
    layers.sort(key=lambda l: not any(r.HasField("phase") and r.phase == caffe_pb2.TRAIN for r in l.include))
    for layer in layers:
        for pname in ("data_param", "image_data_param", "hdf5_data_param", "window_data_param"):
            if layer.HasField(pname) and getattr(layer, pname).source:
                found.folders.append(os.path.dirname(getattr(layer, pname).source))
        transform = layer.transform_param
        if transform.mean_file:
            found.mean_files.append(transform.mean_file)
            found.folders.append(os.path.dirname(transform.mean_file))
        found.mean_values |= len(transform.mean_value) > 0
    found.folders = [f for f in dict.fromkeys(found.folders) if f]
    return found


def _dataset_candidates(folder: Path, dataset, sources: _Sources, info: dict) -> list[tuple[Path, str]]:
    """(folder, why) in the order of the module docstring."""
    if dataset is not None:
        return [(Path(dataset), "--dataset")]
    jobs = Path(os.path.abspath(folder)).parent
    out = []
    for written in sources.folders:
        path = Path(written)
        out.append((jobs / path.name, f"sibling job {path.name}, from train_val.prototxt's {written}"))
        out.append((path if path.is_absolute() else folder / path, "as train_val.prototxt names it"))
    if info.get("dataset_id"):
        out.append((jobs / str(info["dataset_id"]), "sibling job, info.json's dataset_id"))
    if info.get("dataset path"):
        out.append((Path(info["dataset path"]), "info.json's dataset path"))
    unique = {}
    for path, why in out:
        unique.setdefault(path, why)
    return list(unique.items())


def _pick_dataset(folder: Path, candidates: list[tuple[Path, str]], explicit: bool) -> Path:
    for path, why in candidates:
        if (path / LABELS).is_file():
            log.info("%s: labels and mean from the dataset job %s (%s)", folder, path, why)
            return path
    looked = "; ".join(f"{p} ({why})" for p, why in candidates)
    if explicit:
        raise ConverterError(f"--dataset {candidates[0][0]} has no {LABELS}; give the DIGITS "
                             "dataset job folder (labels.txt, mean.binaryproto, train_db)", folder)
    raise ConverterError(f"the model job has no {LABELS} and its dataset job was not found; "
                         f"looked for {LABELS} in: {looked}; give --dataset DATASET_JOB_DIR "
                         "(the DIGITS dataset job folder), or --labels and --mean", folder)
