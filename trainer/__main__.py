"""python -m trainer: DIGITS model jobs from standard or custom networks; training from solver files."""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from prototxt import STANDARD_NETWORKS, network_path, read_net
from prototxt.cli import command_parser, main_with_commands

from .dataset_info import read_dataset_info
from .device import CUDNN_SEARCH_HELP, CUDNN_SEARCHES
from .live import DEFAULT_PORT
from .model_job import new_model_job
from .solver_gen import POLICIES, SOLVER_TYPES, ModelForm
from .timing import add_parser as add_time_parser


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def cmd_new(args: argparse.Namespace) -> int:
    dataset = read_dataset_info(args.dataset)
    source = network_path(args.network) if args.network in STANDARD_NETWORKS else Path(args.network)
    form = ModelForm(epochs=args.epochs, batch_size=args.batch_size,
                     batch_accumulation=args.batch_accumulation, base_lr=args.lr,
                     policy=args.policy, step=args.step_size,
                     step_values=tuple(args.step_values) if args.step_values else None,
                     gamma=args.gamma, power=args.power, solver_type=args.solver_type,
                     rms_decay=args.rms_decay, random_seed=args.seed,
                     snapshot_interval=args.snapshot_interval, val_interval=args.val_interval,
                     gpu=_cuda_available())
    job = new_model_job(dataset, read_net(source), args.out, form, crop_size=args.crop_size,
                        use_mean=args.mean, name=args.name, force=args.force,
                        no_mirror=args.no_mirror)
    s = job.solver
    print(f"wrote model job {job.path}: {dataset.n_train} train / {dataset.n_val} val records, "
          f"max_iter {s.max_iter} ({args.epochs} epochs), lr {s.base_lr:g} {s.lr_policy}, "
          f"test every {s.test_interval or '-'} iterations, snapshot every {s.snapshot or 'end'}")
    if args.train:
        return _train(job.path / "solver.prototxt", args)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return _train(Path(args.solver), args)


def _train(solver_path: Path, args: argparse.Namespace) -> int:
    from .snapshot import latest_snapshot
    from .solver import Options, Solver, TrainingDiverged
    solver = Solver(solver_path, Options(
        dataset=getattr(args, "dataset_override", None), out=getattr(args, "out_dir", None),
        weights=[w for w in (args.weights or "").split(",") if w], device=args.device,
        workers=args.workers, max_iter=args.max_iter, test_iter=args.test_iter, fast=args.fast,
        cuda_graphs=getattr(args, "cuda_graphs", False),
        cudnn_search=getattr(args, "cudnn_search", "find"), bad_records=args.bad_records,
        progress=False if args.no_progress else None))
    resume = latest_snapshot(solver.prefix) if args.resume == "auto" else args.resume
    if resume:
        solver.options.resume = Path(resume)
    port = getattr(args, "serve", None)
    if port is None or not solver.dist.root:  # torchrun: the first process serves the page
        return _solve(solver, TrainingDiverged)
    from .live.job import LiveJob
    from .live.runner import LiveServer
    job = LiveJob(solver.folder, solver.out, solver.path, solver.param.max_iter)
    with LiveServer(job, args.host, port) as url:
        print(f"training page at {url}", flush=True)
        status = _solve(solver, TrainingDiverged)
        if status in (0, 3):  # finished or diverged: the page stays to be read
            print(f"training {'finished' if status == 0 else 'diverged'}; the page stays at "
                  f"{url} until Ctrl-C", flush=True)
            _wait_for_ctrl_c()
    return status


def _wait_for_ctrl_c() -> None:
    """Sleep until Ctrl-C or SIGTERM, the expected way out. Ctrl-C is made to interrupt even
    where the shell started us with SIGINT ignored (a background job)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # Terminated (SIGTERM, prototxt.cli) is one too
        pass
    finally:
        signal.signal(signal.SIGINT, previous)


def _solve(solver, diverged: type[Exception]) -> int:
    try:
        result = solver.solve()
    except diverged:
        return 3
    if result.stopped_early:
        return 128 + (result.stop_signal or signal.SIGINT)  # 130 after Ctrl-C, 143 after SIGTERM
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from .live.job import LiveJob
    from .live.runner import watch
    folder = Path(args.job_dir)
    if not folder.is_dir():
        raise OSError(f"no such job folder: {folder}; give the model job folder "
                      "(solver.prototxt, caffe_output.log, metrics.csv)")
    if not any((folder / name).is_file() for name in ("solver.prototxt", "metrics.csv",
                                                      "caffe_output.log")):
        raise OSError(f"{folder} has no solver.prototxt, metrics.csv or caffe_output.log; give "
                      "a model job folder (trainer new --out, or the --out of trainer run)")
    try:
        watch(LiveJob(folder, solver=args.solver), args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 0 to 65535 (0: any free "
                                         f"port), not {text!r}")
    return value


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 50,85; got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser, commands = command_parser("python -m trainer", __doc__)
    p = commands.add_parser("new", help="write a DIGITS model job (original/train_val/deploy/solver)",
                            description="Write the files DIGITS 6.1's model form would: the network "
                                        "split for the dataset, and the solver generated from epochs, "
                                        "batch size and learning-rate settings (percent of training).")
    p.add_argument("--dataset", required=True, help="dataset folder (labels.txt, train_db, val_db, mean)")
    p.add_argument("--network", required=True,
                   help=f"{', '.join(STANDARD_NETWORKS)}, or an all-in-one .prototxt")
    p.add_argument("--out", required=True, help="model job folder to create")
    p.add_argument("--name", help="job name for info.json (default: the folder name)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, help="train and val batch (default: the network's)")
    p.add_argument("--batch-accumulation", type=int, help="iter_size (gradients summed over N batches)")
    p.add_argument("--lr", type=float, default=0.01, help="base learning rate (default 0.01)")
    p.add_argument("--policy", choices=POLICIES, default="step")
    p.add_argument("--step-size", type=float, help="step/sigmoid: %% of training (default 33 / 50)")
    p.add_argument("--step-values", type=_floats, help="multistep: %% of training (default 50,85)")
    p.add_argument("--gamma", type=float, help="policy gamma (DIGITS' default per policy)")
    p.add_argument("--power", type=float, help="inv/poly power (default 0.5 / 3)")
    p.add_argument("--solver-type", choices=SOLVER_TYPES, default="SGD", type=str.upper)
    p.add_argument("--rms-decay", type=float, default=0.99)
    p.add_argument("--seed", type=int, help="random_seed for the solver")
    p.add_argument("--snapshot-interval", type=float, default=1.0, help="epochs (default 1)")
    p.add_argument("--val-interval", type=float, default=1.0, help="epochs (default 1)")
    p.add_argument("--crop-size", type=int, help="crop (must fit the images)")
    p.add_argument("--mean", choices=("image", "pixel", "none"), default="image")
    p.add_argument("--no-mirror", action="store_true",
                   help="no random left-right flips in training, whatever the network says "
                        "(GoogLeNet and AlexNet flip: right for photos, wrong for digits and text)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--train", action="store_true", help="then train it (as trainer run would)")
    _add_run_options(p)
    p.set_defaults(func=cmd_new)

    p = commands.add_parser("run", help="train from a Caffe solver file, as `caffe train` did",
                            description="Train the solver's net with Caffe's semantics: test and "
                                        "display intervals, iter_size, lr policies, solver types, "
                                        "snapshots (.caffemodel + .solverstate), caffe_output.log, "
                                        "metrics.csv and training.png in the solver's folder.")
    p.add_argument("solver", help="solver.prototxt (its net paths resolve against its folder)")
    p.add_argument("--dataset", type=Path, dest="dataset_override", metavar="DIR",
                   help="dataset folder: point the Data layers at DIR/train_db, DIR/val_db and "
                        "DIR/mean.binaryproto (for jobs made on another machine)")
    p.add_argument("--out", type=Path, dest="out_dir", metavar="DIR",
                   help="write caffe_output.log, metrics, chart and snapshots here instead of "
                        "the solver's folder (e.g. for a read-only job folder)")
    _add_run_options(p)
    p.add_argument("--serve", type=_port, nargs="?", const=DEFAULT_PORT, metavar="PORT",
                   help=f"serve the live training page (chart, facts, snapshots with an ONNX "
                        f"download) while training, on PORT (default {DEFAULT_PORT}; 0: any free "
                        f"port); it stays up after training until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1",
                   help="the page's address (default 127.0.0.1: this machine only; 0.0.0.0 "
                        "opens it to the network)")
    p.set_defaults(func=cmd_run)

    p = commands.add_parser("watch", help="serve the live training page of a job folder",
                            description="Serve DIGITS' model view for a model job: loss, accuracy "
                                        "and learning rate against epoch (updating while a run "
                                        "writes the folder), the job's network, dataset and "
                                        "solver, and its snapshots with an ONNX download. Reads "
                                        "the folder's files only.")
    p.add_argument("job_dir", metavar="JOB_DIR", help="the model job folder, or the --out folder "
                   "of trainer run (metrics.csv, caffe_output.log, snapshots)")
    p.add_argument("--solver", metavar="SOLVER", help="the solver file, for the facts "
                   "and the run's length (default: JOB_DIR/solver.prototxt)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"default {DEFAULT_PORT}; 0 picks a free port")
    p.add_argument("--host", default="127.0.0.1",
                   help="default 127.0.0.1 (this machine only); 0.0.0.0 opens it to the network")
    p.set_defaults(func=cmd_watch)

    add_time_parser(commands)
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="comma-separated .caffemodel files to start from (by layer name)")
    p.add_argument("--resume", help="a .solverstate to continue from, or 'auto' for the newest snapshot")
    p.add_argument("--device", help="cpu (default), cuda or cuda:N")
    p.add_argument("--workers", type=int, default=0,
                   help="processes preparing batches ahead (default 0: in the training process)")
    p.add_argument("--max-iter", type=int, help="override the solver's max_iter")
    p.add_argument("--test-iter", type=int, help="override test_iter (batches per test) of every test net")
    p.add_argument("--fast", action="store_true",
                   help="bf16 autocast where the hardware has it, channels_last (not bit-faithful)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="CUDA: capture each net's forward/backward once and replay it (iter_size 1, "
                        "one process); the log says when it is not used")
    p.add_argument("--cudnn-search", choices=CUDNN_SEARCHES, default="find", help=CUDNN_SEARCH_HELP)
    p.add_argument("--bad-records", choices=("stop", "skip"), default="stop",
                   help="a record that cannot be read (not a Datum, an image that does not "
                        "decode): stop with an error naming it (default), or skip it, using the "
                        "next readable record instead and logging each skipped record once")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
    from lmdb_builder.errors import BuilderError  # a damaged or missing dataset: one line too
    return main_with_commands(build_parser(), argv, errors=(BuilderError,))


if __name__ == "__main__":
    sys.exit(main())
