"""A Target: what an audit examines — a classifier, the data it was trained and tested on, and its model file.

    >>> from modelshield.zoo import load_target
    >>> target = load_target("zoo:cancer-gbm")  # doctest: +SKIP
    >>> target.info().model_sha256[:12]  # doctest: +SKIP

The Target sits beside ``findings.py`` rather than inside ``audit/`` because the zoo, the CLI and every attack
build or read one; it depends only on the model and data interfaces.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield._internal.hashing import sha256_file
from modelshield.data.interface import Dataset
from modelshield.errors import InvalidInputError
from modelshield.findings import TargetInfo
from modelshield.models.interface import Classifier

if TYPE_CHECKING:
    from modelshield.models.retrain import Trainer

__all__ = ["Requirement", "Target", "check_sensitive"]


class Requirement(enum.StrEnum):
    """What a check or an attack needs from a target."""

    WHITE_BOX = "white-box"  # gradients (a GradientClassifier)
    MODEL_FILE = "model-file"  # the model's file on disk
    TRAIN_DATA = "train-data"  # the training set (members), e.g. for privacy checks
    TRAINER = "trainer"  # the model's training recipe (Target.trainer), to train more models like it
    SCORES = "scores"  # class scores (probabilities or logits), not only the predicted label


@dataclass(frozen=True, eq=False)
class Target:
    """A classifier with its test data (and, when known, its training data and model file)."""

    name: str
    classifier: Classifier
    test: Dataset
    train: Dataset | None = None
    model_path: Path | None = None
    model_format: str = "in-memory"
    description: str = ""
    signature_path: Path | None = None  # default: MODEL.sig beside the model file, when there is one
    public_key_path: Path | None = None  # the signer's public key, to verify the signature with
    trainer: Trainer | None = None  # how to train more models like this one (reference models for privacy checks)
    #: Features whose groups the fairness check compares (sex, age band): names of the test data's features, so
    #: model inputs. An attribute the model does not take as input cannot be named here (not supported yet).
    sensitive: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for data in (self.test, self.train):
            if data is None:
                continue
            if data.schema.input_shape != self.classifier.input_shape:
                raise InvalidInputError(
                    f"Data {data.name!r} has inputs of shape {data.schema.input_shape}, but the model "
                    f"{self.name!r} expects {self.classifier.input_shape}.",
                    remedy="Pass the data the model was built for (same features, same order).",
                )
            if data.n_classes != self.classifier.n_classes:
                raise InvalidInputError(
                    f"Data {data.name!r} has {data.n_classes} classes, but the model {self.name!r} predicts "
                    f"{self.classifier.n_classes}.",
                    remedy="Check the label column and that data and model belong together.",
                )
        object.__setattr__(self, "sensitive", check_sensitive(self.sensitive, self.test))

    @cached_property
    def model_sha256(self) -> str | None:
        return sha256_file(self.model_path) if self.model_path is not None else None

    def unmet(self, requires: Iterable[Requirement]) -> list[str]:
        """Why this target cannot serve something that ``requires`` these (empty when it can)."""
        needs = set(requires)
        reasons = []
        if Requirement.WHITE_BOX in needs and not self.classifier.white_box:
            reasons.append(f"needs gradients, and {type(self.classifier).__name__} is black-box")
        if Requirement.SCORES in needs and self.classifier.label_only:
            reasons.append(f"needs class scores, and {type(self.classifier).__name__} returns labels only")
        if Requirement.MODEL_FILE in needs and self.model_path is None:
            reasons.append("needs the model file, and the target has none on disk")
        if Requirement.TRAIN_DATA in needs and self.train is None:
            reasons.append("needs the training data (members), and none was given")
        if Requirement.TRAINER in needs and self.trainer is None:
            reasons.append("needs the model's training recipe to retrain it, and the target has none")
        return reasons

    def info(self) -> TargetInfo:
        """Identity of the target for a report: names, digests, shapes."""
        return TargetInfo(
            name=self.name,
            description=self.description,
            model_format=self.model_format,
            model_path=str(self.model_path) if self.model_path is not None else None,
            model_sha256=self.model_sha256,
            train_sha256=self.train.digest if self.train is not None else None,
            test_sha256=self.test.digest,
            n_classes=self.classifier.n_classes,
            input_shape=self.classifier.input_shape,
            classifier=type(self.classifier).__name__,
            white_box=self.classifier.white_box,
        )


def check_sensitive(names: Iterable[str], test: Dataset) -> tuple[str, ...]:
    """``names`` as a tuple without repeats, each a feature of ``test``; else an InvalidInputError that names the
    unknown one and lists the features there are (what :attr:`Target.sensitive` accepts)."""
    if isinstance(names, str):  # a lone name, not its characters
        names = (names,)
    chosen = tuple(dict.fromkeys(str(name) for name in names))
    available = test.schema.names
    unknown = [name for name in chosen if name not in available]
    if unknown:
        shown = ", ".join(available[:20]) + (f", ... ({len(available)} in all)" if len(available) > 20 else "")
        raise InvalidInputError(
            f"Sensitive feature {unknown[0]!r} is not a feature of the data {test.name!r}; its features are: {shown}.",
            remedy="Name sensitive features exactly as the data's columns are named (case matters).",
        )
    return chosen
