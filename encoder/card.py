"""The model card (`model.json` next to `model.safetensors`): everything a reader of the weights
must know to use them correctly, and where they came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from survey.units import SurveyUnits

from .errors import IncompatibleInput
from .preprocess import PreprocessConfig, for_survey

CARD_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"

# How `Encoder.embed` turns a cutout into its search vector: the network once ("plain"); its output
# averaged over the square's 8 symmetries ("dihedral8": 8 passes, invariant to right-angle turns and
# mirrors); or the stamp first turned so its light's major axis lies along x, then averaged over the
# half-turn and the two mirrors of that frame ("aligned4": 4 passes, close to invariant at any angle).
Readout = Literal["plain", "dihedral8", "aligned4"]
READOUTS: tuple[str, ...] = ("plain", "dihedral8", "aligned4")


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backbone: str
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict)  # e.g. {"channels": [32, 64, 128, 256]}
    small_input: bool = True
    embedding_dim: int
    projection_dim: int
    projection_hidden: int
    preprocess: PreprocessConfig
    # How pixels become the search vector (encoder.model.Encoder.embed); cards before it: "plain".
    readout: Readout = "plain"
    training: dict[str, Any] = Field(default_factory=dict)  # resolved TrainSettings + data summary
    produced_by: str = ""  # the exact command that made these weights
    metrics: dict[str, Any] = Field(default_factory=dict)
    # A fine-tuned model's head (training/finetune.py): task, classes or target, held-out metrics, the
    # command. None for a self-supervised encoder; its weights then hold no head (encoder/head.py).
    head: dict[str, Any] | None = None
    weights_sha256: str = ""
    created: str = ""
    code_version: str = ""

    @model_validator(mode="after")
    def _align_follows_readout(self) -> ModelCard:
        """The readout owns the alignment: preprocess.align is derived here, whatever a card says."""
        if self.preprocess.align != (self.readout == "aligned4"):
            self.preprocess = self.preprocess.model_copy(update={"align": self.readout == "aligned4"})
        return self

    @property
    def bands(self) -> tuple[str, ...]:
        return self.preprocess.bands

    def for_survey(self, units: SurveyUnits | None) -> ModelCard:
        """This card with the preprocessing levels of the survey being encoded (encoder.preprocess.for_survey);
        refuses a survey whose kind of units or band count the encoder cannot take."""
        return self.model_copy(update={"preprocess": for_survey(self.preprocess, units)})

    def check_bands(self, bands: tuple[str, ...] | None, n_planes: int) -> None:
        """Refuse a cutout whose band count (or names, when given) differs from the model's."""
        if n_planes != len(self.bands):
            raise IncompatibleInput(
                f"cutout has {n_planes} band(s) but the model takes {len(self.bands)} ({','.join(self.bands)})"
            )
        if bands is not None and tuple(bands) != self.bands:
            raise IncompatibleInput(f"cutout bands {','.join(bands)} differ from the model's {','.join(self.bands)}")

    def save(self, directory: Path) -> Path:
        path = Path(directory) / CARD_NAME
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, directory: Path) -> ModelCard:
        return cls.model_validate_json((Path(directory) / CARD_NAME).read_text())
