import json
import os

from transformers import TrainerCallback


class StepCounter(TrainerCallback):
    """Counts on_step_end calls, so the test can compare them with the trainer's own global_step."""

    def __init__(self, output_dir: str, file_name: str):
        self.path = os.path.join(output_dir, file_name)
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1

    def on_train_end(self, args, state, control, **kwargs):
        with open(self.path, "w") as f:
            json.dump({"steps_seen": self.steps, "global_step": state.global_step}, f)
