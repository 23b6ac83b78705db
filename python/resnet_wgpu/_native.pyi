# Type stubs of the Rust extension module (python/src/lib.rs); the docstrings live there.
import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__version__: str

Image = str | os.PathLike[str] | bytes | bytearray | npt.NDArray[np.uint8]
Prediction = tuple[int, str, float]

class Classifier:
    def __init__(
        self,
        weights: str | os.PathLike[str],
        precision: Literal["f32", "f16"] = "f32",
        adapter: int | str | None = None,
        backend: str | None = None,
        batch: int = 16,
        *,
        labels: Sequence[str] | str | os.PathLike[str] | None = None,
        size: int | None = None,
        resize: int | None = None,
        flavour: str | None = None,
    ) -> None: ...
    def logits(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
    def features(self, x: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]: ...
    def preprocess(self, images: Iterable[Image]) -> npt.NDArray[np.float32]: ...
    def classify(
        self,
        images: Iterable[Image],
        top: int = 5,
        errors: Literal["raise", "return"] = "raise",
    ) -> list[list[Prediction] | Exception]: ...
    @property
    def classes(self) -> int: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def flavour(self) -> str: ...
    @property
    def notes(self) -> list[str]: ...
    @property
    def input_size(self) -> tuple[int, int]: ...
    @property
    def precision(self) -> str: ...
    @property
    def batch(self) -> int: ...
    @property
    def adapter(self) -> dict[str, Any]: ...

def adapters(backend: str | None = None) -> list[dict[str, Any]]: ...
def bench_json(
    model: str,
    weights: str | None,
    batch: int,
    size: int,
    warmup: int | None,
    steps: int | None,
    seed: int,
    precision: str,
    adapter: int | str | None,
    backend: str | None,
) -> str: ...
