"""SATeCo as an MLflow pyfunc model, logged "from code" (MLflow loads this file, nothing is pickled).

``predict`` takes one window of LR frames ``(T, h, w, 3)`` uint8 and returns ``(T, 4h, 4w, 3)`` uint8.
Artifacts: ``weights`` (SATeCo's modules), ``base_model`` (optional diffusers folder); model config:
``preset``.
"""

from __future__ import annotations

import mlflow
import numpy as np


class SATeCoModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from satecco.build import build_pipeline
        from satecco.presets import ModelSpec

        spec = ModelSpec(preset=context.model_config.get("preset", "tiny"),
                         base_model=context.artifacts.get("base_model"), weights=context.artifacts["weights"])
        self.pipeline = build_pipeline(spec)

    def predict(self, context, model_input, params=None):
        from satecco.windows import quantize

        frames = np.asarray(model_input, dtype=np.uint8)
        return quantize(self.pipeline.upscale_window(frames, first_frame=0, seed=(params or {}).get("seed", 0)))


mlflow.models.set_model(SATeCoModel())
