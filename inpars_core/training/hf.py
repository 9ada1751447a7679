"""The pieces that put our training on the ecosystem's trainer (sentence-transformers'
``CrossEncoderTrainer``, an HF ``Trainer``): the cross-encoder wrapper whose pair encoding is
ours, the planned-batch data loader, the trainer subclass, and the two callbacks both the
cross-encoder and the bi-encoder trainers use (one train-log line per update; the dev evaluation
at step 0, every ``eval_every`` updates and at the end, keeping the best).

This module imports torch, transformers and sentence-transformers at module level: import it
only inside the functions that train.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import torch
from sentence_transformers.base.modules import Transformer
from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from inpars_core.reranking.encoding import EncodingConfig, encode_pairs

logger = logging.getLogger(__name__)

#: The dev measure that picks the best checkpoint.
MEASURE = "nDCG@10"


def write_line(handle: TextIO, record: dict[str, Any]) -> None:
    """One JSON line, keys sorted, flushed."""
    handle.write(json.dumps(record, sort_keys=True) + "\n")
    handle.flush()


def quiet_trainer(trainer: Any, progress: bool) -> None:
    """Library code logs, it does not print: drop HF's printer (it prints every log dict when
    tqdm is off) and keep the tqdm bar (loss and ETA) only when ``progress`` is asked for."""
    trainer.remove_callback(PrinterCallback)
    if not progress:
        trainer.remove_callback(ProgressCallback)


# --- the model: a CrossEncoder around our loaded model, encoding pairs our way ---------------


def wrap_cross_encoder(
    path: str, model: Any, tokenizer: Any, encoding: EncodingConfig, device: str
) -> Any:
    """A sentence-transformers ``CrossEncoder`` around ``model`` (already loaded by
    :func:`inpars_core.training.loading.load_for_training`, head and notes included), whose
    ``preprocess`` is :func:`encode_pairs` with ``encoding``.

    Every library loss calls ``model.preprocess(pairs)``, so the pairs the model sees in
    training are encoded exactly as at inference (pair/separate modes, token_type_ids, the query
    cut). The library's own preprocess truncates ``longest_first`` and knows nothing of the
    ``separate`` mode, which is why it is replaced here rather than a collator: the
    ``CrossEncoderDataCollator`` only passes raw text columns through to the losses.
    """

    class _PairTransformer(Transformer):
        """The library's Transformer module around a model loaded elsewhere, with our pair
        encoding."""

        def _load_model(self, model_name_or_path: str, *args: Any, **kwargs: Any) -> Any:
            # The model is loaded (and its head reported, P3) by load_for_training; loading it
            # again here would draw a second random head. Any other folder is a checkpoint the
            # trainer resumes from: its weights are loaded, then copied into ``model``.
            if model_name_or_path != path:
                return super()._load_model(model_name_or_path, *args, **kwargs)
            return model

        def preprocess(
            self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any
        ) -> dict[str, Any]:
            queries = [pair[0] for pair in inputs]
            documents = [pair[1] for pair in inputs]
            return dict(encode_pairs(tokenizer, queries, documents, encoding))

    module = _PairTransformer(path, transformer_task="sequence-classification")
    module.processor = tokenizer
    return CrossEncoder(modules=[module], device=device)


# --- the data: exactly the planned batches -------------------------------------------------


class PlannedBatches(torch.utils.data.Sampler):
    """Yields the dataset row indices of each planned update, in order: the trainer sees the
    batches :func:`inpars_core.training.trainer.plan_steps` drew (seeded shuffles, listwise
    groups kept together), not the library's random sampler's."""

    def __init__(self, batches: Sequence[Sequence[int]]) -> None:
        self.batches = [list(b) for b in batches]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class NonFiniteLossError(RuntimeError):
    """Raised from the loss computation when the loss is not finite: the update is not run."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"loss is {value} at step {step}")
        self.step = step
        self.value = value


class PlannedCrossEncoderTrainer(CrossEncoderTrainer):
    """``CrossEncoderTrainer`` fed the planned batches, with a hook on every training loss.

    ``on_loss(step, value, labels)`` runs after each training loss is computed and before its
    backward pass (first-batch checks); a non-finite loss raises :class:`NonFiniteLossError` there,
    so that update never runs (HF's Trainer would step on NaN gradients). Under data-parallel
    training ``planned`` is this rank's share of each batch and ``loss_weights[step - 1]`` the
    weight of its loss; the value ``on_loss`` sees is then the whole batch's loss (an
    all-reduce), the same on every rank, so every rank stops on the same non-finite loss.
    """

    def __init__(
        self,
        *args: Any,
        planned: Sequence[Sequence[int]],
        on_loss: Callable[[int, float, Any], None] | None = None,
        loss_weights: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.planned = planned
        self.on_loss = on_loss
        self.loss_weights = loss_weights

    def get_train_dataloader(self) -> Any:
        """The planned batches, collated by the library's collator. The loader has its own
        generator, so iterating it draws nothing from torch's global RNG (dropout's).

        Under several processes ``planned`` already holds this rank's share of every batch
        (:func:`inpars_core.training.trainer.shard_steps`): the ``BatchSamplerShard`` that
        ``accelerator.prepare`` wraps around it is made a passthrough, as HF's Trainer does for
        its own rank-aware sampler, so it does not deal out whole batches to the ranks (which
        would multiply the global batch by the number of processes)."""
        sampler = PlannedBatches(self.planned)
        loader = torch.utils.data.DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=0,
            pin_memory=self.args.dataloader_pin_memory,
            generator=torch.Generator().manual_seed(int(self.args.seed)),
        )
        prepared = self.accelerator.prepare(loader)
        shard = getattr(prepared, "batch_sampler", None)
        if shard is not None and getattr(shard, "batch_sampler", None) is sampler:
            shard.num_processes = 1
            shard.process_index = 0
        self._train_dataloader = prepared
        return self._train_dataloader

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        labels = inputs.get("label")
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            loss = result[0] if return_outputs else result
            step = int(self.state.global_step) + 1
            if self.loss_weights is not None:
                # This rank's share of the global batch: DDP averages the ranks' gradients, so
                # weighting each rank's mean loss by ``ranks * share`` gives the gradient of the
                # global batch's mean loss (a rank without rows runs a dummy row at weight 0).
                loss = loss * self.loss_weights[step - 1]
                result = (loss, result[1]) if return_outputs else loss
            value = global_mean(loss.detach().float())
            if self.on_loss is not None:
                self.on_loss(step, value, labels)
            if not math.isfinite(value):
                raise NonFiniteLossError(step, value)
        return result


def global_mean(value: Any) -> float:
    """The mean of a scalar tensor over the processes (every rank must call it: an all-reduce),
    or its value in a single process. With the weights of
    :class:`PlannedCrossEncoderTrainer`, the mean of the weighted rank losses is the loss of the
    whole planned batch."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return float(value)
    total = value.detach().clone().reshape(1)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total[0]) / dist.get_world_size()


# --- the callbacks both trainers share ------------------------------------------------------


class StepLog(TrainerCallback):
    """One ``train_log.jsonl`` line per update: step, loss, lr (the one the update used),
    grad_norm (before clipping), plus ``extra(step)`` fields (e.g. parameter drift). A
    non-finite logged loss stops training, with a line in ``notes``."""

    def __init__(
        self,
        handle: TextIO,
        extra: Callable[[int], dict[str, Any]] | None = None,
        loss_of: Callable[[int], float | None] | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.handle = handle
        self.extra = extra
        self.loss_of = loss_of
        self.notes = notes if notes is not None else []
        self.records: list[dict[str, Any]] = []
        self._began = time.perf_counter()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._began = time.perf_counter()

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or "loss" not in logs:
            return
        step = int(state.global_step)
        exact = self.loss_of(step) if self.loss_of is not None else None
        record: dict[str, Any] = {
            "step": step,
            "epoch": logs.get("epoch"),
            # HF logs the loss as a float; the exact per-step value comes from the loss hook
            "loss": float(exact if exact is not None else logs["loss"]),
            "lr": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
        }
        if self.extra is not None:
            record.update(self.extra(step))
        record["seconds"] = round(time.perf_counter() - self._began, 3)
        self.records.append(record)
        write_line(self.handle, record)
        if not math.isfinite(record["loss"]):
            note = f"loss is {record['loss']} at step {step}: stopped"
            self.notes.append(note)
            logger.warning(note)
            control.should_training_stop = True


class DevEvaluation(TrainerCallback):
    """The dev evaluation: at step 0 (``on_train_begin``, before any update), every
    ``eval_every`` updates and after the last one; one ``eval_log.jsonl`` line each.

    The trainer saves a checkpoint every ``eval_every`` updates (``save_steps``): the periodic
    evaluation runs once that step's checkpoint is on disk (``on_save``), so an evaluation, and
    the model it keeps, is never ahead of the checkpoint a rerun resumes from
    (:mod:`inpars_core.training.resume`).

    ``measure(step)`` returns the record's fields (``MEASURE`` among them when there is a dev
    set); when its ``MEASURE`` beats every earlier one (ties keep the earlier step, so step 0
    wins unless training strictly improves on it), ``keep(step)`` stores that state and returns
    fields to add (e.g. the saved weights' hash).
    """

    def __init__(
        self,
        measure: Callable[[int], dict[str, Any]],
        keep: Callable[[int], dict[str, Any]],
        eval_every: int,
        handle: TextIO,
    ) -> None:
        self.measure = measure
        self.keep = keep
        self.eval_every = eval_every
        self.handle = handle
        self.records: list[dict[str, Any]] = []
        self.best_step: int | None = None
        self.best_value: float | None = None
        self.seconds = 0.0

    def evaluate(self, step: int) -> dict[str, Any]:
        """Evaluate now, as step ``step``; keep the state when it is the best so far."""
        began = time.perf_counter()
        record: dict[str, Any] = {"step": step, **self.measure(step)}
        value = record.get(MEASURE)
        if value is not None and (self.best_value is None or value > self.best_value):
            self.best_step, self.best_value = step, value
            record.update(self.keep(step))
        record["seconds"] = round(time.perf_counter() - began, 3)
        self.seconds += record["seconds"]
        self.records.append(record)
        write_line(self.handle, record)
        logger.info("eval step %d: %s", step, record)
        return record

    def finish(self, step: int) -> None:
        """Evaluate the final step unless it was just evaluated (nothing without updates)."""
        if step and (not self.records or self.records[-1]["step"] != step):
            self.evaluate(step)

    def restore(self, records: list[dict[str, Any]]) -> None:
        """Take up the evaluations a killed run logged (resuming from its checkpoint)."""
        for record in records:
            self.records.append(record)
            value = record.get(MEASURE)
            if value is not None and (self.best_value is None or value > self.best_value):
                self.best_step, self.best_value = int(record["step"]), value
            self.seconds += record.get("seconds", 0.0)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = int(state.global_step)  # > 0 when resumed from a checkpoint
        if not self.records or (
            step and step % self.eval_every == 0 and self.records[-1]["step"] < step
        ):
            self.evaluate(step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.eval_every == 0:
            self.evaluate(int(state.global_step))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.finish(int(state.global_step))
