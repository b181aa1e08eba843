"""The training engine: one loop (trainer.py), hooks around it, checkpoints, DDP.

``Trainer(method, run_dir=..., hooks=[...]).train(resume=...)`` runs a method's phases; lrreid.build
turns a RunConfig into a Trainer with the usual hooks, lrreid.workflows decides what runs (a fresh
run or a resume, one model per split).  The engine imports neither (tests/test_workflows.py).
"""
from lrreid.engine.checkpoint import (  # noqa: F401
    Checkpoint,
    TrainPosition,
    check_compatible,
    find_last,
    load_checkpoint,
    load_into,
    save_checkpoint,
)
from lrreid.engine.distributed import DistInfo, launch_torchrun, setup_distributed  # noqa: F401
from lrreid.engine.hooks import (  # noqa: F401
    CheckpointHook,
    EvalHook,
    LossHistoryHook,
    ProgressHook,
    TensorBoardHook,
    read_loss_history,
    write_report,
)
from lrreid.engine.trainer import Hook, Trainer, TrainingDivergedError, run_evaluation  # noqa: F401
